"""The CRM port's contract: every adapter (SQL on SQLite / PostgreSQL, gRPC) behaves the same.

Bad input is refused with the error the port documents, and a refused request writes nothing
(no record, no change event).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crmflow.criteria import evaluate
from crmflow.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from crmflow.model.criteria import FilterGroup
from crmflow.model.data_sources import DataSource, DataSourceKind, ReduceRule
from crmflow.model.records import ChangeEvent, ChangeEventType
from crmflow.records.port import (
    Association,
    ObjectTypeDefinition,
    Owner,
    PropertyDefinition,
    PropertyType,
    RecordStore,
    RecordUpdate,
    SubscriptionStatus,
)
from crmflow.records.schema import STANDARD_OBJECT_TYPES
from tests.integration.records.conftest import Backend


def fields(exc: InvalidArgument) -> set[str]:
    return {v.field for v in exc.violations}


def assoc(a: Any, b: Any, label: str = "") -> Association:
    return Association(
        from_object_type=a.object_type,
        from_record_id=a.record_id,
        to_object_type=b.object_type,
        to_record_id=b.record_id,
        label=label,
    )


async def test_object_types_and_default_properties(store: RecordStore, tenant_id: str) -> None:
    types = {t.name for t in await store.list_object_types(tenant_id)}
    assert set(STANDARD_OBJECT_TYPES) <= types
    assert {"contact", "company", "deal", "ticket", "feedback_submission", "call"} <= types
    props = {p.name: p for p in await store.list_properties(tenant_id, "contact")}
    assert props["lifecyclestage"].type == PropertyType.ENUMERATION
    assert "customer" in props["lifecyclestage"].options
    assert props["hubspot_owner_id"].type == PropertyType.OWNER
    assert props["createdate"].read_only
    deal = {p.name: p.type for p in await store.list_properties(tenant_id, "deal")}
    assert deal["amount"] == PropertyType.NUMBER and deal["closedate"] == PropertyType.DATETIME
    with pytest.raises(NotFound):
        await store.list_properties(tenant_id, "spaceship")


async def test_create_get_and_batch_get(store: RecordStore, tenant_id: str) -> None:
    a = await store.create(
        tenant_id,
        "contact",
        {
            "email": "ada@example.com",
            "firstname": "Ada",
            "lifecyclestage": "Lead",
            "num_employees": "12",
            "hs_email_optout": "false",
            "date_of_birth": "1990-05-01",
            "interests": "pricing;events",
        },
    )
    assert a.record_id and a.created_at and a.updated_at
    p = a.properties
    assert p["lifecyclestage"] == "lead"  # canonical option spelling
    assert p["num_employees"] == 12 and type(p["num_employees"]) is int
    assert p["hs_email_optout"] is False
    assert p["date_of_birth"] == "1990-05-01" and p["interests"] == ["pricing", "events"]
    assert p["createdate"]
    got = await store.get(tenant_id, "contact", a.record_id)
    assert got.properties == a.properties and got.created_at == a.created_at
    b = await store.create(tenant_id, "contact", {"email": "bob@example.com"}, record_id="bob-1")
    assert b.record_id == "bob-1"
    batch = await store.batch_get(tenant_id, "contact", ["bob-1", "missing", a.record_id])
    assert [r.record_id for r in batch] == ["bob-1", a.record_id]
    with pytest.raises(NotFound):
        await store.get(tenant_id, "contact", "missing")
    with pytest.raises(AlreadyExists):
        await store.create(tenant_id, "contact", {}, record_id="bob-1")


async def test_bad_properties_are_refused_and_nothing_is_written(
    backend: Backend, tenant_id: str
) -> None:
    store = backend.store
    with pytest.raises(InvalidArgument) as bad:
        await store.create(
            tenant_id,
            "contact",
            {
                "lifecyclestage": "astronaut",
                "num_employees": "many",
                "shoe_size": 42,
                "hs_email_optout": "perhaps",
                "date_of_birth": "yesterday",
                "firstname": "Ann\x00",  # PostgreSQL cannot store it: refused everywhere
            },
        )
    assert fields(bad.value) == {
        "properties.firstname",
        "properties.lifecyclestage",
        "properties.num_employees",
        "properties.shoe_size",
        "properties.hs_email_optout",
        "properties.date_of_birth",
    }
    with pytest.raises(InvalidArgument) as missing:
        await store.create(tenant_id, "company", {"domain": "acme.test"})
    assert fields(missing.value) == {"properties.name"}
    with pytest.raises(InvalidArgument) as ro:
        await store.create(tenant_id, "contact", {"createdate": "2020-01-01"})
    assert fields(ro.value) == {"properties.createdate"}
    with pytest.raises(InvalidArgument) as owner:
        await store.create(tenant_id, "contact", {"hubspot_owner_id": "nobody"})
    assert fields(owner.value) == {"properties.hubspot_owner_id"}
    with pytest.raises(NotFound):
        await store.create(tenant_id, "spaceship", {"name": "x"})
    with pytest.raises(InvalidArgument):
        await store.create(tenant_id, "contact", {}, record_id="bad id with spaces")
    assert await store.count(tenant_id, "contact") == 0
    assert await store.count(tenant_id, "company") == 0
    assert await backend.events(tenant_id) == []


async def test_update_emits_old_and_new_values_and_keeps_history(
    backend: Backend, tenant_id: str
) -> None:
    store = backend.store
    c = await store.create(tenant_id, "contact", {"email": "a@x.test", "lifecyclestage": "lead"})
    u = await store.update(
        tenant_id,
        "contact",
        c.record_id,
        {"lifecyclestage": "customer", "firstname": "Ann", "email": None},
    )
    assert u.properties["lifecyclestage"] == "customer" and "email" not in u.properties
    assert u.updated_at and c.updated_at and u.updated_at >= c.updated_at
    assert (await store.get(tenant_id, "contact", c.record_id)).properties == u.properties
    # No-op update: no event.
    await store.update(tenant_id, "contact", c.record_id, {"firstname": "Ann"})
    events = await backend.events(tenant_id)
    assert [e.event_type for e in events] == [
        ChangeEventType.RECORD_CREATED,
        ChangeEventType.RECORD_UPDATED,
    ]
    changes = {ch.property: (ch.old_value, ch.new_value) for ch in events[1].changes}
    assert changes == {
        "lifecyclestage": ("lead", "customer"),
        "firstname": (None, "Ann"),
        "email": ("a@x.test", None),
    }
    assert len({e.event_id for e in events}) == 2 and events[1].record_id == c.record_id
    hist = await store.property_history(tenant_id, "contact", c.record_id, "lifecyclestage")
    assert [h.value for h in hist] == ["customer", "lead"]
    assert hist[0].changed_at >= hist[1].changed_at
    with pytest.raises(InvalidArgument) as bad:
        await store.update(tenant_id, "contact", c.record_id, {"lifecyclestage": "nope"})
    assert fields(bad.value) == {"properties.lifecyclestage"}
    with pytest.raises(NotFound):
        await store.update(tenant_id, "contact", "missing", {"firstname": "x"})
    with pytest.raises(InvalidArgument):
        await store.property_history(tenant_id, "contact", c.record_id, "no_such_property")
    with pytest.raises(InvalidArgument) as required:
        co = await store.create(tenant_id, "company", {"name": "Acme"})
        await store.update(tenant_id, "company", co.record_id, {"name": None})
    assert fields(required.value) == {"properties.name"}
    assert len(await backend.events(tenant_id)) == 3  # + the company's creation only


async def test_idempotency_keys(backend: Backend, tenant_id: str) -> None:
    store = backend.store
    first = await store.create(tenant_id, "deal", {"dealname": "Big"}, idempotency_key="k1")
    again = await store.create(tenant_id, "deal", {"dealname": "Big"}, idempotency_key="k1")
    assert again.record_id == first.record_id
    assert await store.count(tenant_id, "deal") == 1
    with pytest.raises(InvalidArgument) as reused:
        await store.create(tenant_id, "deal", {"dealname": "Other"}, idempotency_key="k1")
    assert fields(reused.value) == {"idempotency_key"}
    u1 = await store.update(
        tenant_id, "deal", first.record_id, {"amount": 10}, idempotency_key="k2"
    )
    await store.update(tenant_id, "deal", first.record_id, {"amount": 20})
    u2 = await store.update(
        tenant_id, "deal", first.record_id, {"amount": 10}, idempotency_key="k2"
    )
    assert u1.properties["amount"] == 10 and u2.properties["amount"] == 20  # not re-applied
    kinds = [e.event_type for e in await backend.events(tenant_id)]
    assert kinds.count(ChangeEventType.RECORD_CREATED) == 1
    assert kinds.count(ChangeEventType.RECORD_UPDATED) == 2


async def test_batches_are_all_or_nothing(backend: Backend, tenant_id: str) -> None:
    store = backend.store
    with pytest.raises(InvalidArgument) as bad:
        await store.batch_create(
            tenant_id,
            "ticket",
            [
                {"subject": "ok"},
                {"subject": "bad", "priority": "WHENEVER"},
                {"content": "x"},
            ],
        )
    assert fields(bad.value) == {"records[1].properties.priority", "records[2].properties.subject"}
    assert await store.count(tenant_id, "ticket") == 0 and await backend.events(tenant_id) == []
    made = await store.batch_create(
        tenant_id,
        "ticket",
        [{"subject": f"t{i}", "hs_pipeline_stage": "new", "priority": "LOW"} for i in range(5)],
    )
    assert [r.properties["subject"] for r in made] == [f"t{i}" for i in range(5)]
    ids = [r.record_id for r in made]
    with pytest.raises(NotFound):
        await store.batch_update(
            tenant_id,
            "ticket",
            [
                RecordUpdate(record_id=ids[0], properties={"priority": "HIGH"}),
                RecordUpdate(record_id="missing", properties={"priority": "HIGH"}),
            ],
        )
    assert (await store.get(tenant_id, "ticket", ids[0])).properties["priority"] == "LOW"
    done = await store.batch_update(
        tenant_id,
        "ticket",
        [RecordUpdate(record_id=i, properties={"hs_pipeline_stage": "closed"}) for i in ids[:3]],
    )
    assert all(r.properties["hs_pipeline_stage"] == "closed" for r in done)
    closed = FilterGroup.model_validate(
        {"filters": [{"property": "hs_pipeline_stage", "operator": "eq", "value": "closed"}]}
    )
    assert await store.count(tenant_id, "ticket", closed) == 3
    assert len(await backend.events(tenant_id)) == 8


async def test_delete_removes_record_links_and_emits(backend: Backend, tenant_id: str) -> None:
    store = backend.store
    c = await store.create(tenant_id, "contact", {"email": "gone@x.test"})
    co = await store.create(tenant_id, "company", {"name": "Stays"})
    await store.associate(tenant_id, assoc(c, co))
    lst = await store.create_list(tenant_id, "VIP", "contact")
    await store.add_to_list(tenant_id, lst.list_id, [c.record_id])
    await store.delete(tenant_id, "contact", c.record_id)
    with pytest.raises(NotFound):
        await store.get(tenant_id, "contact", c.record_id)
    assert await store.list_associations(tenant_id, "company", co.record_id, "contact") == []
    assert await store.list_members(tenant_id, lst.list_id) == []
    assert (
        await store.count(
            tenant_id,
            "contact",
            FilterGroup.model_validate(
                {"filters": [{"property": "email", "operator": "is_known"}]}
            ),
        )
        == 0
    )
    last = (await backend.events(tenant_id))[-1]
    assert last.event_type == ChangeEventType.RECORD_DELETED
    assert last.properties["email"] == "gone@x.test"
    with pytest.raises(NotFound):
        await store.delete(tenant_id, "contact", c.record_id)


async def test_delete_reports_the_associations_it_drops(backend: Backend, tenant_id: str) -> None:
    """Deleting a company: each association it had is reported removed from the other record's
    side (what a workflow on contacts reading "associated company" listens to), in the same
    transaction as the deletion; a refused delete reports nothing."""
    store = backend.store
    co = await store.create(tenant_id, "company", {"name": "Gone"})
    c1 = await store.create(tenant_id, "contact", {"email": "one@x.test"})
    c2 = await store.create(tenant_id, "contact", {"email": "two@x.test"})
    deal = await store.create(tenant_id, "deal", {"dealname": "D"})
    await store.associate(tenant_id, assoc(c1, co, "primary"))
    await store.associate(tenant_id, assoc(c2, co))
    await store.associate(tenant_id, assoc(co, c2, "billing"))
    await store.associate(tenant_id, assoc(deal, co))
    await store.associate(tenant_id, assoc(c1, deal))  # not the company's: not reported
    before = len(await backend.events(tenant_id))
    with pytest.raises(NotFound):
        await store.delete(tenant_id, "company", "missing")
    assert len(await backend.events(tenant_id)) == before
    await store.delete(tenant_id, "company", co.record_id)
    new = (await backend.events(tenant_id))[before:]
    assert new[-1].event_type == ChangeEventType.RECORD_DELETED
    assert new[-1].record_id == co.record_id
    removed = {
        (e.object_type, e.record_id, e.association_label)
        for e in new
        if e.event_type == ChangeEventType.ASSOCIATION_REMOVED
    }
    assert removed == {
        ("contact", c1.record_id, "primary"),
        ("contact", c2.record_id, ""),
        ("contact", c2.record_id, "billing"),
        ("deal", deal.record_id, ""),
    }
    assert len(new) == 5  # one per dropped association, then the deletion
    for e in new[:-1]:
        assert e.event_type == ChangeEventType.ASSOCIATION_REMOVED
        assert (e.associated_object_type, e.associated_record_id) == ("company", co.record_id)
        assert e.properties["name"] == "Gone"  # what the deleted company was
    assert await store.list_associations(tenant_id, "contact", c2.record_id, "company") == []
    assert len(await store.list_associations(tenant_id, "contact", c1.record_id, "deal")) == 1


async def test_associations_with_labels(backend: Backend, tenant_id: str) -> None:
    store = backend.store
    c = await store.create(tenant_id, "contact", {"email": "c@x.test"})
    a = await store.create(tenant_id, "company", {"name": "A"})
    b = await store.create(tenant_id, "company", {"name": "B"})
    await store.associate(tenant_id, assoc(c, a, "primary"))
    await store.associate(tenant_id, assoc(c, b))
    await store.associate(tenant_id, assoc(c, a, "primary"))  # again: no-op
    got = await store.list_associations(tenant_id, "contact", c.record_id, "company")
    assert {(x.to_record_id, x.label) for x in got} == {(a.record_id, "primary"), (b.record_id, "")}
    primary = await store.list_associations(
        tenant_id, "contact", c.record_id, "company", label="primary"
    )
    assert [x.to_record_id for x in primary] == [a.record_id]
    back = await store.list_associations(tenant_id, "company", a.record_id, "contact")
    assert [(x.to_record_id, x.label) for x in back] == [(c.record_id, "primary")]
    before = len(await backend.events(tenant_id))
    with pytest.raises(NotFound):
        await store.associate(
            tenant_id,
            Association(
                from_object_type="contact",
                from_record_id=c.record_id,
                to_object_type="company",
                to_record_id="missing",
            ),
        )
    with pytest.raises(NotFound):
        await store.associate(
            tenant_id,
            Association(
                from_object_type="contact",
                from_record_id=c.record_id,
                to_object_type="spaceship",
                to_record_id=a.record_id,
            ),
        )
    assert len(await backend.events(tenant_id)) == before
    await store.unassociate(tenant_id, assoc(a, c, "primary"))  # either direction
    left = await store.list_associations(tenant_id, "contact", c.record_id, "company")
    assert [x.to_record_id for x in left] == [b.record_id]
    kinds = [
        (e.event_type, e.record_id, e.association_label)
        for e in await backend.events(tenant_id)
        if "ASSOCIATION" in e.event_type
    ]
    assert kinds == [
        (ChangeEventType.ASSOCIATION_ADDED, c.record_id, "primary"),
        (ChangeEventType.ASSOCIATION_ADDED, a.record_id, "primary"),
        (ChangeEventType.ASSOCIATION_ADDED, c.record_id, ""),
        (ChangeEventType.ASSOCIATION_ADDED, b.record_id, ""),
        (ChangeEventType.ASSOCIATION_REMOVED, a.record_id, "primary"),
        (ChangeEventType.ASSOCIATION_REMOVED, c.record_id, "primary"),
    ]


async def _pages(
    store: RecordStore, tenant_id: str, rid: str, limit: int, label: str = ""
) -> list[list[tuple[str, str]]]:
    """Every page of ``rid``'s contacts, following ``after`` until a short page."""
    pages: list[list[tuple[str, str]]] = []
    after = ""
    while True:
        got = await store.list_associations(
            tenant_id, "company", rid, "contact", label=label, limit=limit, after=after
        )
        pages.append([(a.to_record_id, a.label) for a in got])
        ids = list(dict.fromkeys(a.to_record_id for a in got))
        assert len(ids) <= limit
        if len(ids) < limit:
            return pages
        after = ids[-1]


async def test_association_pages(backend: Backend, tenant_id: str) -> None:
    """Keyset pages by associated record id: ordered, each association exactly once, a record's
    labels never split across pages, the label filter applied before the limit."""
    store = backend.store
    co = await store.create(tenant_id, "company", {"name": "Many"})
    made = ["p5", "p1", "p7", "p3", "p2", "p6", "p4"]  # creation order is not id order
    for rid in made:
        c = await store.create(tenant_id, "contact", {}, record_id=rid)
        if rid != "p3":
            await store.associate(tenant_id, assoc(co, c))
        if rid in ("p2", "p3", "p5"):
            await store.associate(tenant_id, assoc(co, c, "primary"))
    everything = {(r, "") for r in made if r != "p3"} | {
        ("p2", "primary"),
        ("p3", "primary"),
        ("p5", "primary"),
    }
    # unpaged: every association, in the order they were made (as before paging existed)
    unpaged = await store.list_associations(tenant_id, "company", co.record_id, "contact")
    assert [(a.to_record_id, a.label) for a in unpaged][:3] == [
        ("p5", ""),
        ("p5", "primary"),
        ("p1", ""),
    ]
    assert {(a.to_record_id, a.label) for a in unpaged} == everything
    for limit in (1, 2, 3, 7, 50):
        pages = await _pages(store, tenant_id, co.record_id, limit)
        flat = [x for page in pages for x in page]
        assert flat == sorted(everything), limit  # ordered, each exactly once
    # a page of 2 records holds 3 associations: p2's two labels stay together
    first = await store.list_associations(tenant_id, "company", co.record_id, "contact", limit=2)
    assert [(a.to_record_id, a.label) for a in first] == [
        ("p1", ""),
        ("p2", ""),
        ("p2", "primary"),
    ]
    assert all(a.from_record_id == co.record_id for a in first)
    # after without a limit: the rest, in id order
    rest = await store.list_associations(tenant_id, "company", co.record_id, "contact", after="p5")
    assert [(a.to_record_id, a.label) for a in rest] == [("p6", ""), ("p7", "")]
    assert (
        await store.list_associations(tenant_id, "company", co.record_id, "contact", after="p9")
        == []
    )
    # the label filter comes first, then the limit
    assert await _pages(store, tenant_id, co.record_id, 2, label="primary") == [
        [("p2", "primary"), ("p3", "primary")],
        [("p5", "primary")],
    ]
    assert await _pages(store, tenant_id, co.record_id, 5, label="nope") == [[]]
    # a record without associations: an empty page; a missing one: NotFound, paged or not
    alone = await store.create(tenant_id, "company", {"name": "Alone"})
    assert await _pages(store, tenant_id, alone.record_id, 3) == [[]]
    with pytest.raises(NotFound):
        await store.list_associations(tenant_id, "company", "missing", "contact", limit=3)
    with pytest.raises(NotFound):
        await store.list_associations(tenant_id, "company", co.record_id, "spaceship", limit=3)
    for bad in (0, -1):
        with pytest.raises(InvalidArgument) as err:
            await store.list_associations(tenant_id, "company", co.record_id, "contact", limit=bad)
        assert fields(err.value) == {"limit"}


async def test_list_associations_rpc_pages(backend: Backend, tenant_id: str) -> None:
    """ListAssociations on the wire: page_size bounds (INVALID_ARGUMENT naming page_size) and a
    next_page_token only while more records follow."""
    if backend.name != "grpc":
        pytest.skip("the rpc's own fields")
    import grpc
    from google.rpc import error_details_pb2

    from crmflow.api.crm.v1 import crm_service_pb2 as pb
    from crmflow.grpc.errors import status_from_rpc_error

    stub = backend.store._stub  # type: ignore[attr-defined]
    co = await backend.sql.create(tenant_id, "company", {"name": "Wire"})
    for rid in ("w1", "w2", "w3", "w4"):
        c = await backend.sql.create(tenant_id, "contact", {}, record_id=rid)
        await backend.sql.associate(tenant_id, assoc(c, co))

    def req(**kw: Any) -> Any:
        return pb.ListAssociationsRequest(
            tenant_id=tenant_id,
            object_type="company",
            record_id=co.record_id,
            to_object_type="contact",
            **kw,
        )

    tokens, seen, token = [], [], ""
    while True:
        r = await stub.ListAssociations(req(page_size=2, page_token=token))
        seen += [a.to_record_id for a in r.associations]
        tokens.append(r.next_page_token)
        if not r.next_page_token:
            break
        token = r.next_page_token
    assert seen == ["w1", "w2", "w3", "w4"]
    assert tokens == ["w2", ""]  # the second page is the last: no empty third page
    whole = await stub.ListAssociations(req())
    assert len(whole.associations) == 4 and whole.next_page_token == ""
    for bad in (-1, 1001):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListAssociations(req(page_size=bad))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        status = status_from_rpc_error(err.value)
        assert status is not None
        found = []
        for d in status.details:
            br = error_details_pb2.BadRequest()
            if d.Unpack(br):
                found += [v.field for v in br.field_violations]
        assert found == ["page_size"]


async def test_resolve_data_sources(backend: Backend, tenant_id: str) -> None:
    """One call resolves every source kind, reduced to one record each; the same answers on
    every backend (the gRPC adapter's rpc, and its fallback for CRMs without it)."""
    store = backend.store
    c = await store.create(tenant_id, "contact", {"email": "ann@acme.test", "firstname": "ann"})
    lone = await store.create(tenant_id, "contact", {"email": "bo@none.test"})
    a = await store.create(tenant_id, "company", {"name": "A", "domain": "acme.test"})
    b = await store.create(tenant_id, "company", {"name": "B", "domain": "acme.test"})
    await store.associate(tenant_id, assoc(c, a, "primary"))
    await store.associate(tenant_id, assoc(c, b))
    await store.associate(tenant_id, assoc(lone, b))
    a = await store.update(tenant_id, "company", a.record_id, {"industry": "later"})
    assoc_ = DataSourceKind.ASSOCIATED
    sources = [
        DataSource(source_id="primary", kind=assoc_, object_type="company",
                   association_label="primary", is_default=True),
        DataSource(source_id="newest", kind=assoc_, object_type="company",
                   reduce=ReduceRule.MOST_RECENTLY_CREATED),
        DataSource(source_id="updated", kind=assoc_, object_type="company"),
        DataSource(source_id="by_domain", kind=DataSourceKind.PROPERTY_MATCH,
                   object_type="company", property="domain", enrolled_property="email",
                   transform="email_domain", reduce=ReduceRule.FIRST_CREATED),
        DataSource(source_id="by_name", kind=DataSourceKind.PROPERTY_VALUE,
                   object_type="company", property="name", value="B"),
        DataSource(source_id="gone", kind=DataSourceKind.PROPERTY_VALUE,
                   object_type="company", property="no_such_property", value="x"),
        DataSource(source_id="deal", kind=assoc_, object_type="deal"),
    ]  # fmt: skip

    async def check(store: RecordStore) -> None:
        got = await store.resolve_sources(
            tenant_id, "contact", c.record_id, sources, include_record=True
        )
        assert got.record is not None and got.record.record_id == c.record_id
        assert got.record.properties["firstname"] == "ann"
        assert {k: r.record_id if r else None for k, r in got.sources.items()} == {
            "primary": a.record_id,
            "newest": b.record_id,
            "updated": a.record_id,
            "by_domain": a.record_id,
            "by_name": b.record_id,
            "gone": None,
            "deal": None,
        }
        assert set(got.skipped) == {"gone"}
        assert got.sources["by_name"] == await store.get(tenant_id, "company", b.record_id)
        # A default primary source falls back to any association when none is labelled.
        got = await store.resolve_sources(tenant_id, "contact", lone.record_id, sources[:1])
        assert got.record is None and got.sources["primary"] is not None
        assert got.sources["primary"].record_id == b.record_id
        # The caller's copy of the enrolled record is what property matches read.
        moved = c.model_copy(update={"properties": {"email": "x@nowhere.test"}})
        got = await store.resolve_sources(
            tenant_id, "contact", c.record_id, sources[3:4], enrolled=moved
        )
        assert got.sources == {"by_domain": None}
        # Another tenant sees nothing; a malformed tenant id is refused.
        got = await store.resolve_sources(tenant_id + "x", "contact", c.record_id, sources[:5])
        assert set(got.sources) == {s.source_id for s in sources[:5]}
        assert all(r is None for r in got.sources.values())
        with pytest.raises(InvalidArgument) as err:
            await store.resolve_sources("bad tenant", "contact", c.record_id, sources)
        assert "tenant_id" in fields(err.value)

    await check(store)
    if backend.name == "grpc":  # a platform CRM without the rpc: the adapter's fallback
        store._resolve_rpc = False  # type: ignore[attr-defined]
        try:
            await check(store)
        finally:
            store._resolve_rpc = True  # type: ignore[attr-defined]


async def test_static_lists(backend: Backend, tenant_id: str) -> None:
    store = backend.store
    cs = await store.batch_create(tenant_id, "contact", [{"firstname": f"n{i}"} for i in range(3)])
    ids = [c.record_id for c in cs]
    lst = await store.create_list(tenant_id, "Newsletter", "contact")
    assert await store.get_list(tenant_id, lst.list_id) == lst
    assert lst in await store.list_lists(tenant_id, "contact")
    assert await store.list_lists(tenant_id, "deal") == []
    await store.add_to_list(tenant_id, lst.list_id, ids[:2])
    await store.add_to_list(tenant_id, lst.list_id, ids[:2])  # no duplicates, no events
    assert await store.list_members(tenant_id, lst.list_id) == ids[:2]
    assert await store.is_member(tenant_id, lst.list_id, ids[0])
    assert not await store.is_member(tenant_id, lst.list_id, ids[2])
    before = len(await backend.events(tenant_id))
    with pytest.raises(NotFound):
        await store.add_to_list(tenant_id, lst.list_id, [ids[2], "missing"])
    assert not await store.is_member(tenant_id, lst.list_id, ids[2])  # all or nothing
    assert len(await backend.events(tenant_id)) == before
    await store.remove_from_list(tenant_id, lst.list_id, [ids[0]])
    assert await store.list_members(tenant_id, lst.list_id) == [ids[1]]
    with pytest.raises(NotFound):
        await store.get_list(tenant_id, "missing")
    with pytest.raises(NotFound):
        await store.create_list(tenant_id, "x", "spaceship")
    with pytest.raises(InvalidArgument):
        await store.create_list(tenant_id, "  ", "contact")
    kinds = [
        (e.event_type, e.list_id) for e in await backend.events(tenant_id) if "LIST" in e.event_type
    ]
    assert kinds == [(ChangeEventType.LIST_MEMBERSHIP_ADDED, lst.list_id)] * 2 + [
        (ChangeEventType.LIST_MEMBERSHIP_REMOVED, lst.list_id)
    ]


async def test_owners_teams_and_owner_properties(store: RecordStore, tenant_id: str) -> None:
    await store.upsert_owner(tenant_id, Owner(owner_id="u1", email="u1@x.test", name="Una"))
    await store.upsert_owner(tenant_id, Owner(owner_id="u2", email="u2@x.test"))
    await store.upsert_owner(
        tenant_id, Owner(owner_id="sales", kind="team", member_ids=["u1", "u2"])
    )
    owners = {o.owner_id: o for o in await store.list_owners(tenant_id)}
    assert owners["u1"].name == "Una" and owners["sales"].member_ids == ["u1", "u2"]
    with pytest.raises(InvalidArgument) as bad:
        await store.upsert_owner(tenant_id, Owner(owner_id="t2", kind="team", member_ids=["zz"]))
    assert fields(bad.value) == {"owner.member_ids[0]"}
    c = await store.create(tenant_id, "contact", {"hubspot_owner_id": "u1"})
    assert c.properties["hubspot_owner_id"] == "u1"
    assert await store.list_owners("tother" + tenant_id[1:]) == []


async def test_subscription_status(store: RecordStore, tenant_id: str) -> None:
    c = await store.create(tenant_id, "contact", {"email": "s@x.test"})
    assert await store.get_subscription_status(tenant_id, c.record_id) == "unknown"
    await store.set_subscription_status(tenant_id, c.record_id, SubscriptionStatus.UNSUBSCRIBED)
    assert await store.get_subscription_status(tenant_id, c.record_id) == "unsubscribed"
    with pytest.raises(NotFound):
        await store.get_subscription_status(tenant_id, "missing")
    with pytest.raises(InvalidArgument):
        await store.set_subscription_status(tenant_id, c.record_id, "maybe")  # type: ignore[arg-type]


async def test_custom_objects_and_properties(store: RecordStore, tenant_id: str) -> None:
    ot = await store.define_object_type(
        tenant_id,
        ObjectTypeDefinition(name="pet", label="Pets", primary_property="pet_name"),
        [
            PropertyDefinition(
                object_type="pet", name="pet_name", type=PropertyType.STRING, required=True
            ),
            PropertyDefinition(
                object_type="pet",
                name="species",
                type=PropertyType.ENUMERATION,
                options=["dog", "cat"],
            ),
        ],
    )
    assert ot.custom and "pet" in {t.name for t in await store.list_object_types(tenant_id)}
    p = await store.create(tenant_id, "pet", {"pet_name": "Rex", "species": "DOG"})
    assert p.properties["species"] == "dog"
    with pytest.raises(InvalidArgument) as bad:
        await store.create(tenant_id, "pet", {"species": "fish"})
    assert fields(bad.value) == {"properties.species", "properties.pet_name"}
    with pytest.raises(AlreadyExists):
        await store.define_object_type(tenant_id, ObjectTypeDefinition(name="pet"))
    with pytest.raises(AlreadyExists):
        await store.define_object_type(tenant_id, ObjectTypeDefinition(name="contact"))
    with pytest.raises(InvalidArgument):
        await store.define_object_type(tenant_id, ObjectTypeDefinition(name="Bad Name"))
    # A custom property on a standard object, then usable and filterable.
    await store.define_property(
        tenant_id,
        PropertyDefinition(
            object_type="contact",
            name="tshirt",
            type=PropertyType.ENUMERATION,
            options=["S", "M", "L"],
        ),
    )
    c = await store.create(tenant_id, "contact", {"tshirt": "m"})
    g = FilterGroup.model_validate(
        {"filters": [{"property": "tshirt", "operator": "eq", "value": "M"}]}
    )
    assert [r.record_id for r in (await store.search(tenant_id, "contact", g)).records] == [
        c.record_id
    ]
    with pytest.raises(FailedPrecondition):
        await store.define_property(
            tenant_id,
            PropertyDefinition(object_type="contact", name="tshirt", type=PropertyType.NUMBER),
        )
    with pytest.raises(FailedPrecondition):
        await store.define_property(
            tenant_id,
            PropertyDefinition(object_type="contact", name="email", type=PropertyType.NUMBER),
        )
    with pytest.raises(InvalidArgument):
        await store.define_property(
            tenant_id,
            PropertyDefinition(object_type="contact", name="size", type=PropertyType.ENUMERATION),
        )
    # Another tenant sees none of it.
    other = "o" + tenant_id[1:]
    with pytest.raises(NotFound):
        await store.list_properties(other, "pet")
    assert "tshirt" not in {p.name for p in await store.list_properties(other, "contact")}


async def test_custom_events_and_form_submissions(backend: Backend, tenant_id: str) -> None:
    store = backend.store
    c = await store.create(tenant_id, "contact", {"email": "f@x.test"})
    now = datetime.now(UTC)
    await store.record_event(
        tenant_id,
        ChangeEvent(
            event_id="ev-1",
            tenant_id=tenant_id,
            event_type=ChangeEventType.FORM_SUBMITTED,
            object_type="contact",
            record_id=c.record_id,
            occurred_at=now,
            form_id="demo-form",
            properties={"message": "hi"},
        ),
    )
    await store.record_event(
        tenant_id,
        ChangeEvent(
            event_id="ev-1",
            tenant_id=tenant_id,
            event_type=ChangeEventType.FORM_SUBMITTED,
            object_type="contact",
            record_id=c.record_id,
            occurred_at=now,
            form_id="demo-form",
        ),
    )
    await store.record_event(
        tenant_id,
        ChangeEvent(
            event_id="ev-2",
            tenant_id=tenant_id,
            event_type=ChangeEventType.CUSTOM_EVENT,
            object_type="contact",
            record_id=c.record_id,
            occurred_at=now,
            event_name="viewed_pricing",
        ),
    )
    evs = [e for e in await backend.events(tenant_id) if e.event_id.startswith("ev-")]
    assert [(e.event_id, e.form_id, e.event_name) for e in evs] == [
        ("ev-1", "demo-form", ""),
        ("ev-2", "", "viewed_pricing"),
    ]
    assert evs[0].properties == {"message": "hi"}
    with pytest.raises(NotFound):
        await store.record_event(
            tenant_id,
            ChangeEvent(
                event_id="ev-3",
                tenant_id=tenant_id,
                event_type=ChangeEventType.CUSTOM_EVENT,
                object_type="contact",
                record_id="missing",
                occurred_at=now,
                event_name="x",
            ),
        )
    with pytest.raises(InvalidArgument):
        await store.record_event(
            tenant_id,
            ChangeEvent(
                event_id="ev-4",
                tenant_id=tenant_id,
                event_type=ChangeEventType.RECORD_UPDATED,
                object_type="contact",
                record_id=c.record_id,
                occurred_at=now,
            ),
        )
    assert len(await backend.events(tenant_id)) == 3


async def test_tenants_are_isolated(backend: Backend, tenant_id: str) -> None:
    store = backend.store
    other = "x" + tenant_id[1:]
    mine = await store.create(tenant_id, "contact", {"email": "mine@x.test"})
    theirs = await store.create(other, "company", {"name": "Theirs"})
    with pytest.raises(NotFound):
        await store.get(other, "contact", mine.record_id)
    with pytest.raises(NotFound):
        await store.update(other, "contact", mine.record_id, {"firstname": "hack"})
    with pytest.raises(NotFound):
        await store.delete(other, "contact", mine.record_id)
    assert await store.batch_get(other, "contact", [mine.record_id]) == []
    assert (await store.search(other, "contact")).total == 0
    with pytest.raises(NotFound):
        await store.associate(
            tenant_id,
            Association(
                from_object_type="contact",
                from_record_id=mine.record_id,
                to_object_type="company",
                to_record_id=theirs.record_id,
            ),
        )
    lst = await store.create_list(other, "theirs", "contact")
    with pytest.raises(NotFound):
        await store.add_to_list(tenant_id, lst.list_id, [mine.record_id])
    with pytest.raises(NotFound):
        await store.add_to_list(other, lst.list_id, [mine.record_id])
    with pytest.raises(InvalidArgument):
        await store.get("", "contact", mine.record_id)
    assert [e.event_type for e in await backend.events(tenant_id)] == [
        ChangeEventType.RECORD_CREATED
    ]


# Search -------------------------------------------------------------------------------

NOW = datetime.now(UTC)
PEOPLE: list[dict[str, Any]] = [
    {
        "firstname": "Ada",
        "email": "ada@acme.test",
        "lifecyclestage": "customer",
        "num_employees": 50,
        "date_of_birth": "1980-01-02",
        "interests": ["pricing", "events"],
        "hs_email_optout": False,
    },
    {
        "firstname": "Bob",
        "email": "bob@beta.test",
        "lifecyclestage": "lead",
        "num_employees": 5,
        "date_of_birth": "1995-07-30",
        "interests": ["pricing"],
    },
    {
        "firstname": "Cy",
        "email": "cy@acme.test",
        "lifecyclestage": "opportunity",
        "num_employees": 500,
        "interests": ["events", "newsletter"],
        "hs_email_optout": True,
    },
    {"firstname": "Di", "lifecyclestage": "lead", "city": "Aarhus"},
    {"firstname": "Ed_%", "email": "ed@gamma.test", "num_employees": 0, "city": "aarhus"},
]

FILTERS: list[dict[str, Any]] = [
    {"property": "lifecyclestage", "operator": "eq", "value": "LEAD"},
    {"property": "lifecyclestage", "operator": "neq", "value": "lead"},
    {"property": "lifecyclestage", "operator": "in", "values": ["customer", "opportunity"]},
    {"property": "lifecyclestage", "operator": "not_in", "values": ["lead"]},
    {"property": "email", "operator": "contains", "value": "ACME"},
    {"property": "email", "operator": "not_contains", "value": "acme"},
    {"property": "email", "operator": "starts_with", "value": "b"},
    {"property": "email", "operator": "ends_with", "value": ".test"},
    {"property": "firstname", "operator": "contains", "value": "_%"},
    {"property": "city", "operator": "eq", "value": "AARHUS"},
    {"property": "num_employees", "operator": "gt", "value": 5},
    {"property": "num_employees", "operator": "gte", "value": 5},
    {"property": "num_employees", "operator": "lt", "value": "50"},
    {"property": "num_employees", "operator": "lte", "value": 0},
    {"property": "num_employees", "operator": "between", "values": [1, 50]},
    {"property": "num_employees", "operator": "eq", "value": 500},
    {"property": "date_of_birth", "operator": "before", "value": "1990-01-01"},
    {"property": "date_of_birth", "operator": "after", "value": "1990-01-01"},
    {"property": "createdate", "operator": "within_last_days", "value": 1},
    {"property": "createdate", "operator": "within_next_days", "value": 1},
    {"property": "date_of_birth", "operator": "more_than_days_ago", "value": 365},
    {"property": "createdate", "operator": "more_than_days_ago", "value": 1},
    {"property": "email", "operator": "is_known"},
    {"property": "email", "operator": "is_unknown"},
    {"property": "interests", "operator": "has_all", "values": ["pricing", "events"]},
    {"property": "interests", "operator": "in", "values": ["newsletter"]},
    {"property": "hs_email_optout", "operator": "eq", "value": True},
    {"property": "hs_email_optout", "operator": "neq", "value": True},
]


@pytest.fixture
async def people(store: RecordStore, tenant_id: str) -> dict[str, Any]:
    made = await store.batch_create(tenant_id, "contact", PEOPLE)
    return {r.properties["firstname"]: r for r in made}


def _expected(
    group: FilterGroup, records: list[Any], assoc: dict[str, Any] | None = None
) -> set[str]:
    now = datetime.now(UTC)
    return {
        r.record_id
        for r in records
        if evaluate(
            group, r.properties, now=now, associated=(assoc or {}).get(r.record_id, {})
        ).matched
    }


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: f"{f['property']}-{f['operator']}")
async def test_each_operator_matches_the_criteria_evaluator(
    store: RecordStore, tenant_id: str, people: dict[str, Any], flt: dict[str, Any]
) -> None:
    group = FilterGroup.model_validate({"filters": [flt]})
    page = await store.search(tenant_id, "contact", group, limit=100)
    got = {r.record_id for r in page.records}
    assert got == _expected(group, list(people.values()))
    assert page.total == len(got) == await store.count(tenant_id, "contact", group)


async def test_nested_groups_paging_and_sort(
    store: RecordStore, tenant_id: str, people: dict[str, Any]
) -> None:
    group = FilterGroup.model_validate(
        {
            "conjunction": "CONJUNCTION_OR",
            "groups": [
                {
                    "filters": [
                        {"property": "lifecyclestage", "operator": "eq", "value": "lead"},
                        {"property": "city", "operator": "is_known"},
                    ]
                },
                {"filters": [{"property": "num_employees", "operator": "gte", "value": 50}]},
            ],
        }
    )
    want = _expected(group, list(people.values()))
    assert want == {people[n].record_id for n in ("Di", "Ada", "Cy")}
    seen, cursor, pages = [], "", 0
    while True:
        page = await store.search(
            tenant_id, "contact", group, limit=2, cursor=cursor, sort="-num_employees"
        )
        assert page.total == 3
        seen += [r.properties["firstname"] for r in page.records]
        pages += 1
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == ["Cy", "Ada", "Di"] and pages == 2  # no value sorts last
    everyone = await store.search(tenant_id, "contact", sort="firstname")
    assert [r.properties["firstname"] for r in everyone.records] == [
        "Ada",
        "Bob",
        "Cy",
        "Di",
        "Ed_%",
    ]


async def test_association_scoped_filters(
    store: RecordStore, tenant_id: str, people: dict[str, Any]
) -> None:
    big = await store.create(tenant_id, "company", {"name": "Big", "numberofemployees": 1000})
    small = await store.create(tenant_id, "company", {"name": "Small", "numberofemployees": 3})
    await store.associate(tenant_id, assoc(people["Ada"], big, "primary"))
    await store.associate(tenant_id, assoc(people["Bob"], big))
    await store.associate(tenant_id, assoc(people["Bob"], small))
    await store.associate(tenant_id, assoc(people["Cy"], small, "primary"))
    companies = {c.record_id: c.properties for c in (big, small)}
    associated: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for p in people.values():
        links = await store.list_associations(tenant_id, "contact", p.record_id, "company")
        for a in links:
            for key in ("company", f"company:{a.label}") if a.label else ("company",):
                associated.setdefault(p.record_id, {}).setdefault(key, []).append(
                    companies[a.to_record_id]
                )
    for quantifier in (
        "ASSOCIATION_QUANTIFIER_ANY",
        "ASSOCIATION_QUANTIFIER_ALL",
        "ASSOCIATION_QUANTIFIER_NONE",
    ):
        for label in ("", "primary"):
            group = FilterGroup.model_validate(
                {
                    "filters": [
                        {
                            "property": "numberofemployees",
                            "operator": "gt",
                            "value": 100,
                            "association": {
                                "object_type": "company",
                                "label": label,
                                "quantifier": quantifier,
                            },
                        }
                    ]
                }
            )
            got = {r.record_id for r in (await store.search(tenant_id, "contact", group)).records}
            assert got == _expected(group, list(people.values()), associated), (quantifier, label)
    with pytest.raises(InvalidArgument) as bad:
        await store.search(
            tenant_id,
            "contact",
            FilterGroup.model_validate(
                {
                    "filters": [
                        {
                            "property": "no_such",
                            "operator": "is_known",
                            "association": {"object_type": "company"},
                        }
                    ]
                }
            ),
        )
    assert fields(bad.value) == {"criteria.filters[0].property"}


async def test_bad_searches_are_invalid_arguments(store: RecordStore, tenant_id: str) -> None:
    async def refused(flt: dict[str, Any], **kw: Any) -> set[str]:
        with pytest.raises(InvalidArgument) as bad:
            await store.search(
                tenant_id, "contact", FilterGroup.model_validate({"filters": [flt]}), **kw
            )
        return fields(bad.value)

    assert await refused(
        {"property": "x'; drop table crm_record; --", "operator": "eq", "value": 1}
    ) == {"criteria.filters[0].property"}
    assert await refused({"property": "email", "operator": "gt", "value": 1}) == {
        "criteria.filters[0].operator"
    }
    assert await refused({"property": "email", "operator": "bogus", "value": 1}) == {
        "criteria.filters[0].operator"
    }
    assert await refused({"property": "num_employees", "operator": "gt", "value": "lots"}) == {
        "criteria.filters[0].value"
    }
    assert await refused({"property": "email", "operator": "in", "values": []}) == {
        "criteria.filters[0].value"
    }
    with pytest.raises(InvalidArgument) as bad_cursor:
        await store.search(tenant_id, "contact", cursor="not-a-cursor")
    assert fields(bad_cursor.value) == {"cursor"}
    with pytest.raises(InvalidArgument):
        await store.search(tenant_id, "contact", limit=0)
    with pytest.raises(InvalidArgument):
        await store.search(tenant_id, "contact", sort="no_such")
    with pytest.raises(NotFound):
        await store.search(tenant_id, "spaceship")


async def test_datetime_filters_and_epoch_operands(store: RecordStore, tenant_id: str) -> None:
    soon = NOW + timedelta(days=3)
    later = NOW + timedelta(days=30)
    d1 = await store.create(
        tenant_id, "deal", {"dealname": "soon", "closedate": soon.isoformat(), "amount": 100.5}
    )
    await store.create(
        tenant_id, "deal", {"dealname": "later", "closedate": int(later.timestamp() * 1000)}
    )
    within = FilterGroup.model_validate(
        {"filters": [{"property": "closedate", "operator": "within_next_days", "value": 7}]}
    )
    assert [r.record_id for r in (await store.search(tenant_id, "deal", within)).records] == [
        d1.record_id
    ]
    epoch = FilterGroup.model_validate(
        {
            "filters": [
                {
                    "property": "closedate",
                    "operator": "before",
                    "value": int((NOW + timedelta(days=10)).timestamp() * 1000),
                }
            ]
        }
    )
    assert await store.count(tenant_id, "deal", epoch) == 1
    amount = FilterGroup.model_validate(
        {"filters": [{"property": "amount", "operator": "eq", "value": "100.5"}]}
    )
    assert await store.count(tenant_id, "deal", amount) == 1


async def test_enrollment_filters_are_refused_by_name(store: RecordStore, tenant_id: str) -> None:
    group = FilterGroup.model_validate(
        {
            "filters": [{"property": "email", "operator": "is_known"}],
            "groups": [
                {
                    "enrollment_filters": [
                        {
                            "workflow_id": "wf-a",
                            "condition": "ENROLLMENT_CONDITION_HAS_BEEN_ENROLLED",
                        }
                    ]
                }
            ],
        }
    )
    for call in (
        store.search(tenant_id, "contact", group),
        store.count(tenant_id, "contact", group),
    ):
        with pytest.raises(InvalidArgument) as bad:
            await call
        assert fields(bad.value) == {"criteria.groups[0].enrollment_filters[0]"}


def _ev_def(name: str = "viewed_pricing", object_type: str = "contact", **props: Any) -> Any:
    from crmflow.records.port import EventDefinition

    return EventDefinition(
        name=name,
        label=name.replace("_", " ").title(),
        object_type=object_type,
        properties=[
            PropertyDefinition(object_type=object_type, name=n, **spec)
            for n, spec in (
                props
                or {
                    "plan": {"type": PropertyType.ENUMERATION, "options": ["free", "pro"]},
                    "seats": {"type": PropertyType.NUMBER},
                    "page": {"type": PropertyType.STRING, "required": True},
                }
            ).items()
        ],
    )


async def test_custom_event_definitions(backend: Backend, tenant_id: str) -> None:
    store = backend.store
    saved = await store.define_event(tenant_id, _ev_def())
    assert [(p.name, p.type, p.object_type) for p in saved.properties] == [
        ("plan", PropertyType.ENUMERATION, "contact"),
        ("seats", PropertyType.NUMBER, "contact"),
        ("page", PropertyType.STRING, "contact"),
    ]
    got = await store.get_event_definition(tenant_id, "viewed_pricing")
    assert got == saved and got.label == "Viewed Pricing"
    await store.define_event(
        tenant_id, _ev_def("deal_won_call", "deal", minutes={"type": PropertyType.NUMBER})
    )
    assert [d.name for d in await store.list_event_definitions(tenant_id)] == [
        "deal_won_call",
        "viewed_pricing",
    ]
    assert [d.name for d in await store.list_event_definitions(tenant_id, "deal")] == [
        "deal_won_call"
    ]
    # An update may relabel, add and drop properties; the same name keeps its type.
    upd = _ev_def(
        plan={"type": PropertyType.ENUMERATION, "options": ["free", "pro", "team"]},
        seats={"type": PropertyType.NUMBER, "label": "Seats"},
        source={"type": PropertyType.STRING},
    )
    await store.define_event(tenant_id, upd)
    got = await store.get_event_definition(tenant_id, "viewed_pricing")
    assert [p.name for p in got.properties] == ["plan", "seats", "source"]
    assert got.properties[0].options == ["free", "pro", "team"]
    with pytest.raises(FailedPrecondition):
        await store.define_event(tenant_id, _ev_def(seats={"type": PropertyType.STRING}))
    with pytest.raises(FailedPrecondition):
        await store.define_event(tenant_id, _ev_def(object_type="company"))
    assert await store.get_event_definition(tenant_id, "viewed_pricing") == got  # unchanged

    # Bad input names the field; unknown things are NOT_FOUND.
    with pytest.raises(InvalidArgument) as bad:
        await store.define_event(tenant_id, _ev_def("Bad Name"))
    assert fields(bad.value) == {"definition.name"}
    with pytest.raises(InvalidArgument) as bad:
        await store.define_event(tenant_id, _ev_def(size={"type": PropertyType.ENUMERATION}))
    assert fields(bad.value) == {"definition.properties[0].options"}
    dup = _ev_def(seats={"type": PropertyType.NUMBER})
    dup.properties.append(dup.properties[0])
    with pytest.raises(InvalidArgument) as bad:
        await store.define_event(tenant_id, dup)
    assert fields(bad.value) == {"definition.properties[1].name"}
    with pytest.raises(InvalidArgument) as bad:
        await store.define_event(
            tenant_id, _ev_def(x={"type": PropertyType.STRING, "read_only": True})
        )
    assert fields(bad.value) == {"definition.properties[0].read_only"}
    with pytest.raises(NotFound):
        await store.define_event(tenant_id, _ev_def("on_pet", "pet"))
    with pytest.raises(NotFound):
        await store.get_event_definition(tenant_id, "never_defined")
    assert "on_pet" not in {d.name for d in await store.list_event_definitions(tenant_id)}

    # Another tenant sees none of it, and may define the same name its own way.
    other = "e" + tenant_id[1:]
    with pytest.raises(NotFound):
        await store.get_event_definition(other, "viewed_pricing")
    assert await store.list_event_definitions(other) == []
    await store.define_event(other, _ev_def(seats={"type": PropertyType.STRING}))
    assert (await store.get_event_definition(tenant_id, "viewed_pricing")) == got


async def test_defined_custom_events_are_checked_when_recorded(
    backend: Backend, tenant_id: str
) -> None:
    store = backend.store
    await store.define_event(tenant_id, _ev_def())
    c = await store.create(tenant_id, "contact", {"email": "d@x.test"})
    deal = await store.create(tenant_id, "deal", {"dealname": "D"})
    now = datetime.now(UTC)

    def ev(eid: str, props: dict[str, Any], *, name: str = "viewed_pricing", rec: Any = c) -> Any:
        return ChangeEvent(
            event_id=eid,
            tenant_id=tenant_id,
            event_type=ChangeEventType.CUSTOM_EVENT,
            object_type=rec.object_type,
            record_id=rec.record_id,
            occurred_at=now,
            event_name=name,
            properties=props,
        )

    before = len(await backend.events(tenant_id))
    await store.record_event(tenant_id, ev("d-1", {"plan": "PRO", "seats": "12", "page": "/p"}))
    cases: list[tuple[Any, set[str]]] = [
        (ev("d-2", {"seats": "twelve", "page": "/p"}), {"event.properties.seats"}),
        (ev("d-3", {"colour": "red", "page": "/p"}), {"event.properties.colour"}),
        (ev("d-4", {"plan": "gold", "page": "/p"}), {"event.properties.plan"}),
        (ev("d-5", {"seats": 3}), {"event.properties.page"}),
        (ev("d-6", {"page": "/p"}, rec=deal), {"event.object_type"}),
    ]
    for bad_event, named in cases:
        with pytest.raises(InvalidArgument) as bad:
            await store.record_event(tenant_id, bad_event)
        assert fields(bad.value) == named, bad_event.event_id
    # Undefined events keep free-form properties.
    await store.record_event(tenant_id, ev("d-7", {"anything": [1, 2]}, name="not_defined"))
    evs = [e for e in await backend.events(tenant_id) if e.event_id.startswith("d-")]
    assert [e.event_id for e in evs] == ["d-1", "d-7"]  # nothing of the refused ones
    assert evs[0].properties == {"plan": "pro", "seats": 12, "page": "/p"}  # normalised
    assert evs[1].properties == {"anything": [1, 2]}
    assert len(await backend.events(tenant_id)) == before + 2


async def test_concurrent_first_definitions_of_one_event_all_succeed(
    store: RecordStore, tenant_id: str
) -> None:
    import asyncio

    defs = [
        _ev_def("raced", seats={"type": PropertyType.NUMBER, "label": f"v{i}"}) for i in range(5)
    ]
    await asyncio.gather(*(store.define_event(tenant_id, d) for d in defs))
    got = await store.get_event_definition(tenant_id, "raced")
    assert got.properties[0].label in {f"v{i}" for i in range(5)}  # one of them, whole

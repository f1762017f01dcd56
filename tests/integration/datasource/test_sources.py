"""Every data source kind and every reduce rule against the embedded store (SQLite, PostgreSQL).

Each test runs three ways (``path``): one source through the port's single-record calls
(``resolve_source``, the executor's path), the port's default ``resolve_sources`` (those calls,
source by source) and the SQL store's batched ``resolve_sources`` (one statement, reduce in SQL),
so the batched read must pick exactly what the reference path picks.
"""

from __future__ import annotations

import pytest

from crmflow.model.data_sources import DataSource, DataSourceKind, ReduceRule
from crmflow.model.default_sources import default_data_sources
from crmflow.model.records import Record
from crmflow.records.port import (
    ObjectTypeDefinition,
    PropertyDefinition,
    PropertyType,
    RecordStore,
)
from crmflow.records.sources import resolve_source
from crmflow.records.sql import SqlRecordStore
from tests.integration.datasource.conftest import Seeder

ASSOC = DataSourceKind.ASSOCIATED
MATCH = DataSourceKind.PROPERTY_MATCH
VALUE = DataSourceKind.PROPERTY_VALUE
RULES = list(ReduceRule)


PATHS = ("source_by_source", "port_default", "sql_batched")
_path = {"now": PATHS[0]}


@pytest.fixture(params=PATHS, autouse=True)
def path(request: pytest.FixtureRequest) -> str:
    _path["now"] = request.param
    return str(request.param)


async def _resolve(
    store: SqlRecordStore, tenant_id: str, src: DataSource, enrolled: Record
) -> Record | None:
    if _path["now"] == "source_by_source":
        return await resolve_source(
            store, tenant_id, src, enrolled.object_type, enrolled.record_id, enrolled
        )
    # The batched paths read the enrolled record themselves (not passed in).
    batched = store.resolve_sources if _path["now"] == "sql_batched" else None
    if batched is None:
        got = await RecordStore.resolve_sources(
            store, tenant_id, enrolled.object_type, enrolled.record_id, [src]
        )
    else:
        got = await batched(tenant_id, enrolled.object_type, enrolled.record_id, [src])
    assert set(got.sources) == {src.source_id} and got.record is None
    return got.sources[src.source_id]


async def _three_companies(seed: Seeder, domain: str = "acme.io") -> list[Record]:
    """a (oldest, but updated last), b, c (newest)."""
    a = await seed.create("company", name="A", domain=domain)
    b = await seed.create("company", name="B", domain=domain)
    c = await seed.create("company", name="C", domain=domain)
    a = await seed.update(a, industry="updated last")
    return [a, b, c]


EXPECTED = {  # reduce rule -> index into (a, b, c)
    ReduceRule.MOST_RECENTLY_UPDATED: 0,
    ReduceRule.MOST_RECENTLY_CREATED: 2,
    ReduceRule.FIRST_CREATED: 0,
}
# FIRST_CREATED and MOST_RECENTLY_UPDATED both pick "a" above; a second arrangement tells them
# apart (b updated last).


@pytest.mark.parametrize("rule", RULES)
async def test_associated_records_each_reduce_rule(
    store: SqlRecordStore, seed: Seeder, tenant_id: str, rule: ReduceRule
) -> None:
    contact = await seed.create("contact", email="ann@acme.io")
    companies = await _three_companies(seed)
    for c in companies:
        await seed.link(contact, c)
    src = DataSource(source_id="co", kind=ASSOC, object_type="company", reduce=rule)
    got = await _resolve(store, tenant_id, src, contact)
    assert got is not None and got.record_id == companies[EXPECTED[rule]].record_id
    # b updated last: most recently updated moves, the creation rules do not.
    await seed.update(companies[1], industry="now b")
    got = await _resolve(store, tenant_id, src, contact)
    want = {ReduceRule.MOST_RECENTLY_UPDATED: 1}.get(rule, EXPECTED[rule])
    assert got is not None and got.record_id == companies[want].record_id


async def test_associated_by_label(store: SqlRecordStore, seed: Seeder, tenant_id: str) -> None:
    contact = await seed.create("contact", email="ann@acme.io")
    a, b, c = await _three_companies(seed)
    await seed.link(contact, a, "primary")
    await seed.link(contact, b, "billing")
    await seed.link(contact, c, "billing")
    billing = DataSource(
        source_id="billing",
        kind=ASSOC,
        object_type="company",
        association_label="billing",
        reduce=ReduceRule.FIRST_CREATED,
    )
    got = await _resolve(store, tenant_id, billing, contact)
    assert got is not None and got.record_id == b.record_id
    none = billing.model_copy(update={"association_label": "reseller"})
    assert await _resolve(store, tenant_id, none, contact) is None


async def test_default_primary_company_falls_back_to_any_association(
    store: SqlRecordStore, seed: Seeder, tenant_id: str
) -> None:
    [primary_company] = [s for s in default_data_sources("contact") if s.source_id == "company"]
    assert primary_company.association_label == "primary"
    contact = await seed.create("contact", email="ann@acme.io")
    a, b, _ = await _three_companies(seed)
    await seed.link(contact, a)
    await seed.link(contact, b)
    # No labelled association: the reduce rule picks among all (a was updated last).
    got = await _resolve(store, tenant_id, primary_company, contact)
    assert got is not None and got.record_id == a.record_id
    await seed.link(contact, b, "primary")
    got = await _resolve(store, tenant_id, primary_company, contact)
    assert got is not None and got.record_id == b.record_id


@pytest.mark.parametrize("rule", RULES)
async def test_property_match_with_email_domain(
    store: SqlRecordStore, seed: Seeder, tenant_id: str, rule: ReduceRule
) -> None:
    companies = await _three_companies(seed, "acme.io")
    await seed.create("company", name="Other", domain="other.io")
    contact = await seed.create("contact", email="Ann.Smith@ACME.io")
    src = DataSource(
        source_id="by_domain",
        kind=MATCH,
        object_type="company",
        property="domain",
        enrolled_property="email",
        transform="email_domain",
        reduce=rule,
    )
    got = await _resolve(store, tenant_id, src, contact)
    assert got is not None and got.record_id == companies[EXPECTED[rule]].record_id


async def test_property_match_without_transform_and_without_value(
    store: SqlRecordStore, seed: Seeder, tenant_id: str
) -> None:
    await seed.create("company", name="Acme", city="Aarhus")
    hit = await seed.create("company", name="Beta", city="Odense")
    contact = await seed.create("contact", email="x@y.z", city="Odense")
    src = DataSource(
        source_id="same_city",
        kind=MATCH,
        object_type="company",
        property="city",
        enrolled_property="city",
    )
    got = await _resolve(store, tenant_id, src, contact)
    assert got is not None and got.record_id == hit.record_id
    nocity = await seed.create("contact", email="q@y.z")
    assert await _resolve(store, tenant_id, src, nocity) is None
    bad_email = await seed.create("contact", email="not-an-email", city="Nowhere")
    by_domain = src.model_copy(
        update={"property": "domain", "enrolled_property": "email", "transform": "email_domain"}
    )
    assert await _resolve(store, tenant_id, by_domain, bad_email) is None


@pytest.mark.parametrize("rule", RULES)
async def test_property_value_on_a_custom_object(
    store: SqlRecordStore, seed: Seeder, tenant_id: str, rule: ReduceRule
) -> None:
    await store.define_object_type(
        tenant_id,
        ObjectTypeDefinition(name="listing", label="Listings", primary_property="listing_id"),
        [
            PropertyDefinition(object_type="listing", name="listing_id", type=PropertyType.STRING),
            PropertyDefinition(object_type="listing", name="price", type=PropertyType.NUMBER),
        ],
    )
    first = await seed.create("listing", listing_id="X-1", price=100)
    await seed.create("listing", listing_id="Y-2", price=1)
    second = await seed.create("listing", listing_id="X-1", price=200)
    third = await seed.create("listing", listing_id="X-1", price=300)
    first = await seed.update(first, price=150)
    contact = await seed.create("contact", email="a@b.c")
    src = DataSource(
        source_id="listing", kind=VALUE, object_type="listing", property="listing_id",
        value="X-1", reduce=rule,
    )  # fmt: skip
    got = await _resolve(store, tenant_id, src, contact)
    want = {
        ReduceRule.MOST_RECENTLY_UPDATED: first,
        ReduceRule.MOST_RECENTLY_CREATED: third,
        ReduceRule.FIRST_CREATED: first,
    }[rule]
    assert got is not None and got.record_id == want.record_id
    assert second.record_id != got.record_id
    missing = src.model_copy(update={"value": "nope"})
    assert await _resolve(store, tenant_id, missing, contact) is None


async def test_sources_never_see_another_tenant(
    store: SqlRecordStore, seed: Seeder, tenant_id: str
) -> None:
    other = Seeder(store, tenant_id + "x", seed.clock)
    await other.create("company", name="Theirs", domain="acme.io")
    contact = await seed.create("contact", email="ann@acme.io")
    src = DataSource(
        source_id="d", kind=MATCH, object_type="company", property="domain",
        enrolled_property="email", transform="email_domain",
    )  # fmt: skip
    assert await _resolve(store, tenant_id, src, contact) is None
    mine = await seed.create("company", name="Mine", domain="acme.io")
    got = await _resolve(store, tenant_id, src, contact)
    assert got is not None and got.record_id == mine.record_id


async def test_all_sources_of_a_record_in_one_call(
    store: SqlRecordStore, seed: Seeder, tenant_id: str, path: str
) -> None:
    """Several kinds at once (each picks its own record), the enrolled record returned, a
    source whose property no longer exists skipped, a missing enrolled record -> nothing."""
    if path == "source_by_source":
        pytest.skip("batched paths only")
    contact = await seed.create("contact", email="ann@acme.io", firstname="ann")
    old, new = await _three_companies(seed), None
    new = await seed.create("company", name="Other", domain="other.io")
    await seed.link(contact, old[1])
    await seed.link(contact, new)
    sources = [
        DataSource(source_id="first", kind=ASSOC, object_type="company",
                   reduce=ReduceRule.FIRST_CREATED),
        DataSource(source_id="last", kind=ASSOC, object_type="company",
                   reduce=ReduceRule.MOST_RECENTLY_CREATED),
        DataSource(source_id="dom", kind=MATCH, object_type="company", property="domain",
                   enrolled_property="email", transform="email_domain",
                   reduce=ReduceRule.MOST_RECENTLY_CREATED),
        DataSource(source_id="val", kind=VALUE, object_type="company", property="domain",
                   value="other.io"),
        DataSource(source_id="gone", kind=VALUE, object_type="company", property="no_such",
                   value="x"),
        DataSource(source_id="nobody", kind=VALUE, object_type="company", property="domain",
                   value="nobody.io"),
    ]  # fmt: skip
    call = (
        store.resolve_sources
        if path == "sql_batched"
        else lambda *a, **k: RecordStore.resolve_sources(store, *a, **k)
    )
    got = await call(tenant_id, "contact", contact.record_id, sources, include_record=True)
    assert got.record is not None and got.record.properties["firstname"] == "ann"
    picked = {k: (r.record_id if r else None) for k, r in got.sources.items()}
    assert picked == {
        "first": old[1].record_id,
        "last": new.record_id,
        "dom": old[2].record_id,
        "val": new.record_id,
        "gone": None,
        "nobody": None,
    }
    assert set(got.skipped) == {"gone"} and "no_such" in got.skipped["gone"]
    # The enrolled record passed in: property matches use it (no read of the record).
    moved = contact.model_copy(update={"properties": {"email": "x@other.io"}})
    got = await call(tenant_id, "contact", contact.record_id, sources[2:3], enrolled=moved)
    assert got.sources["dom"] is not None and got.sources["dom"].record_id == new.record_id
    assert got.record is None
    # Missing enrolled record: the sources that start from it find nothing, no error (a fixed
    # value still finds its record).
    got = await call(tenant_id, "contact", "missing-1", sources, include_record=True)
    assert got.record is None
    assert {k for k, r in got.sources.items() if r is not None} == {"val"}
    # Another tenant's call sees none of it.
    got = await call(tenant_id + "x", "contact", contact.record_id, sources[:4])
    assert list(got.sources.values()) == [None] * 4

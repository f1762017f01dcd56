"""ResolveInputs end to end on the embedded store: tokens, escaping, missing data, caching."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from datasource_resolver.cache import StepCache
from datasource_resolver.resolver import Resolver, ResolveRequest

from crmflow.model.data_sources import DataSource, DataSourceKind, ReduceRule
from crmflow.model.records import ChangeEvent, ChangeEventType, Record
from crmflow.records.port import RecordStore
from crmflow.records.sql import SqlRecordStore
from crmflow.tokens import Escape, unknown
from tests.integration.datasource.conftest import Seeder

SOURCES = [
    DataSource(source_id="company", kind=DataSourceKind.ASSOCIATED, object_type="company"),
    DataSource(
        source_id="by_domain",
        kind=DataSourceKind.PROPERTY_MATCH,
        object_type="company",
        property="domain",
        enrolled_property="email",
        transform="email_domain",
        reduce=ReduceRule.FIRST_CREATED,
    ),
    DataSource(
        source_id="deal",
        kind=DataSourceKind.ASSOCIATED,
        object_type="deal",
        reduce=ReduceRule.MOST_RECENTLY_CREATED,
    ),
]


class Counting(SqlRecordStore):
    """The real store, counting reads (to see what the cache saves)."""

    reads = 0

    async def get(self, tenant_id: str, object_type: str, record_id: str) -> Record:
        Counting.reads += 1
        return await super().get(tenant_id, object_type, record_id)

    async def batch_get(self, tenant_id: str, object_type: str, ids: Sequence[str]) -> list[Record]:
        Counting.reads += 1
        return await super().batch_get(tenant_id, object_type, ids)

    async def search(self, *args: Any, **kwargs: Any) -> Any:
        Counting.reads += 1
        return await super().search(*args, **kwargs)

    async def resolve_sources(self, *args: Any, **kwargs: Any) -> Any:
        Counting.reads += 1
        return await super().resolve_sources(*args, **kwargs)


@pytest.fixture
async def world(seed: Seeder) -> dict[str, Record]:
    contact = await seed.create("contact", firstname="ann", email="ann@acme.io")
    company = await seed.create("company", name="Acme <Ltd>", domain="acme.io")
    await seed.link(contact, company)
    return {"contact": contact, "company": company}


def _req(tenant_id: str, contact: Record, fields: dict[str, Any], **kw: Any) -> ResolveRequest:
    return ResolveRequest(
        tenant_id=tenant_id,
        workflow_id="wf1",
        revision=1,
        object_type="contact",
        record_id=contact.record_id,
        action_id="a2",
        fields=fields,
        data_sources=SOURCES,
        **kw,
    )


async def test_resolves_tokens_across_record_sources_outputs_and_event(
    store: SqlRecordStore, world: dict[str, Record], tenant_id: str
) -> None:
    resolver = Resolver(store)
    req = _req(
        tenant_id,
        world["contact"],
        {
            "subject": "Hi {{ contact.firstname | capitalize }} from {{ sources.company.name }}",
            "domain": "{{ sources.by_domain.domain }}",
            "score": "{{ actions.a1.outputs.score }}",
            "page": "{{ event.page | default: '/' }}",
            "deal": "{{ sources.deal.amount }}",
            "dealname": "Deal: {{ sources.deal.dealname | default: 'none yet' }}",
            "nested": {"list": ["{{ record.email }}", 5]},
            "plain": 7,
        },
        action_outputs={"a1": {"score": 42}},
    )
    res = await resolver.resolve(req)
    assert res.values == {
        "subject": "Hi Ann from Acme <Ltd>",
        "domain": "acme.io",
        "score": 42,
        "page": "/",
        "deal": unknown("sources.deal.amount"),
        "dealname": "Deal: none yet",
        "nested": {"list": ["ann@acme.io", 5]},
        "plain": 7,
    }
    assert res.missing == ["sources.deal.amount"]
    assert res.sources["company"] is not None
    assert res.sources["deal"] is None


async def test_escaping_per_field(
    store: SqlRecordStore, world: dict[str, Record], tenant_id: str
) -> None:
    resolver = Resolver(store)
    fields = {
        "body": "<p>{{ sources.company.name }}</p>",
        "json": '{"n": "{{ sources.company.name }}"}',
    }
    res = await resolver.resolve(
        _req(
            tenant_id, world["contact"], fields, escapes={"body": Escape.HTML, "json": Escape.JSON}
        )
    )
    assert res.values == {"body": "<p>Acme &lt;Ltd&gt;</p>", "json": '{"n": "Acme <Ltd>"}'}
    # Action types named like email/webhook get HTML/JSON bodies without being told.
    res = await resolver.resolve(
        _req(
            tenant_id,
            world["contact"],
            {"body": "{{ sources.company.name }}"},
            action_type="send_email",
        )
    )
    assert res.values["body"] == "Acme &lt;Ltd&gt;"


async def test_missing_enrolled_record_resolves_to_unknown(
    store: SqlRecordStore, world: dict[str, Record], tenant_id: str
) -> None:
    gone = world["contact"].model_copy(update={"record_id": "does-not-exist"})
    res = await Resolver(store).resolve(
        _req(
            tenant_id,
            gone,
            {"a": "{{ contact.firstname }}", "b": "{{ sources.company.name | default: 'x' }}"},
        )
    )
    assert res.values == {"a": unknown("contact.firstname"), "b": "x"}


async def test_step_cache_saves_reads_and_is_dropped_by_changes(
    db_url: str, seed: Seeder, world: dict[str, Record], tenant_id: str
) -> None:
    from crmflow.db import create_engine

    counting = Counting(create_engine(db_url), clock=seed.clock)
    cache = StepCache()
    store: RecordStore = cache.invalidating(counting)
    resolver = Resolver(store, cache)
    fields = {
        "x": "{{ contact.firstname }} {{ sources.company.name }} {{ sources.by_domain.name }}"
    }
    req = _req(tenant_id, world["contact"], fields)
    try:
        Counting.reads = 0
        assert (await resolver.resolve(req)).values["x"] == "ann Acme <Ltd> Acme <Ltd>"
        first = Counting.reads
        assert first == 1  # the record and both sources in one batched read
        assert (await resolver.resolve(req)).values["x"] == "ann Acme <Ltd> Acme <Ltd>"
        assert Counting.reads == first  # second resolution of the step: no store reads
        # A write through the store drops the entries that read that record.
        await store.update(tenant_id, "company", world["company"].record_id, {"name": "Acme 2"})
        assert (await resolver.resolve(req)).values["x"] == "ann Acme 2 Acme 2"
        # A change event (a write made elsewhere, seen through the outbox) does too.
        await counting.update(tenant_id, "contact", world["contact"].record_id, {"firstname": "bo"})
        assert (await resolver.resolve(req)).values["x"].startswith("ann ")  # still cached
        cache.on_change_events(
            [
                ChangeEvent(
                    event_id="e1",
                    tenant_id=tenant_id,
                    event_type=ChangeEventType.RECORD_UPDATED,
                    object_type="contact",
                    record_id=world["contact"].record_id,
                    occurred_at=seed.clock.now,
                )
            ]
        )
        assert (await resolver.resolve(req)).values["x"].startswith("bo ")
        # A new company with the domain changes what the searched source may find.
        await store.create(tenant_id, "company", {"name": "Newer", "domain": "acme.io"})
        assert len(cache) == 0
    finally:
        await counting.close()


async def test_cache_is_never_shared_across_tenants(
    store: SqlRecordStore, seed: Seeder, world: dict[str, Record], tenant_id: str
) -> None:
    cache = StepCache()
    resolver = Resolver(store, cache)
    fields = {"x": "{{ contact.firstname }}"}
    assert (await resolver.resolve(_req(tenant_id, world["contact"], fields))).values["x"] == "ann"
    # Same workflow id, revision, record id and action in another tenant: its own data.
    other = tenant_id + "b"
    await store.create(other, "contact", {"firstname": "eve"}, record_id=world["contact"].record_id)
    res = await resolver.resolve(_req(other, world["contact"], fields))
    assert res.values["x"] == "eve"
    assert len(cache) == 2


class Asked(SqlRecordStore):
    """The real store, noting what each resolve_sources call asked for."""

    asked: list[tuple[list[str], bool]] = []

    async def resolve_sources(self, *args: Any, **kwargs: Any) -> Any:
        Asked.asked.append(([s.source_id for s in args[3]], kwargs.get("include_record", False)))
        return await super().resolve_sources(*args, **kwargs)


async def test_only_what_the_fields_read_is_read_and_bad_templates_always_refused(
    db_url: str, seed: Seeder, world: dict[str, Record], tenant_id: str
) -> None:
    """What fields read is parsed once per set of texts (flat text fields) or each time (nested
    fields); either way the record and the sources read are exactly the referenced ones, and
    a malformed template is refused on every call (a refusal is never remembered)."""
    from crmflow.db import create_engine
    from crmflow.tokens import TemplateError

    store = Asked(create_engine(db_url), clock=seed.clock)
    resolver = Resolver(store, StepCache())
    contact = world["contact"]
    cases: list[tuple[dict[str, Any], list[str], bool, dict[str, Any]]] = [
        ({"s": "{{ sources.company.name }}"}, ["company"], False, {"s": "Acme <Ltd>"}),
        ({"s": "{{ sources.company.name }}"}, ["company"], False, {"s": "Acme <Ltd>"}),
        ({"s": "Hi {{ contact.firstname }}"}, [], True, {"s": "Hi ann"}),
        (
            {"n": {"deep": ["{{ sources.by_domain.domain }}", "{{ record.email }}"]}, "k": 3},
            ["by_domain"],
            True,
            {"n": {"deep": ["acme.io", "ann@acme.io"]}, "k": 3},
        ),
        ({"plain": "no tokens"}, [], False, {"plain": "no tokens"}),
    ]
    try:
        for i, (fields, sources, with_record, values) in enumerate(cases):
            Asked.asked = []
            got = await resolver.resolve(_req(tenant_id, contact, fields, step_key=f"s{i}"))
            assert got.values == values
            assert Asked.asked == [(sources, with_record)]
        for _ in range(2):
            Asked.asked = []
            with pytest.raises(TemplateError):
                await resolver.resolve(_req(tenant_id, contact, {"s": "{{ contact.x "}))
            assert Asked.asked == []  # refused before any read
    finally:
        await store.close()

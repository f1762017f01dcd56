"""The cross-step record cache on the real store: hits, invalidation, tenant isolation, races."""

from __future__ import annotations

from datetime import UTC, datetime

from datasource_resolver.cache import StepCache
from datasource_resolver.record_cache import CachedReads, RecordCache
from datasource_resolver.resolver import Resolver, ResolveRequest

from crmflow.model.criteria import FilterGroup, PropertyFilter
from crmflow.model.data_sources import DataSource, DataSourceKind, ReduceRule
from crmflow.model.records import ChangeEvent, ChangeEventType
from crmflow.records.port import Association
from crmflow.records.sql import SqlRecordStore
from tests.integration.datasource.conftest import Seeder

DOMAIN = FilterGroup(filters=[PropertyFilter(property="domain", operator="eq", value="acme.io")])


async def test_reads_are_cached_until_a_write_through_the_store(
    store: SqlRecordStore, seed: Seeder, tenant_id: str
) -> None:
    records = RecordCache()
    steps = StepCache(records=records)
    writes = steps.invalidating(store)
    reads = CachedReads(writes, records)
    c = await seed.create("contact", firstname="ann")
    co = await seed.create("company", name="Acme", domain="acme.io")
    await writes.associate(
        tenant_id,
        Association(
            from_object_type="contact",
            from_record_id=c.record_id,
            to_object_type="company",
            to_record_id=co.record_id,
        ),
    )
    assert (await reads.get(tenant_id, "contact", c.record_id)).properties["firstname"] == "ann"
    assert len(await reads.list_associations(tenant_id, "contact", c.record_id, "company")) == 1
    assert len((await reads.search(tenant_id, "company", DOMAIN, limit=5)).records) == 1
    misses = records.misses
    await reads.get(tenant_id, "contact", c.record_id)
    await reads.list_associations(tenant_id, "contact", c.record_id, "company")
    await reads.search(tenant_id, "company", DOMAIN, limit=5)
    await reads.batch_get(tenant_id, "company", [co.record_id])
    assert records.misses == misses  # all four from the cache

    await writes.update(tenant_id, "contact", c.record_id, {"firstname": "bo"})
    assert (await reads.get(tenant_id, "contact", c.record_id)).properties["firstname"] == "bo"
    await writes.create(tenant_id, "company", {"name": "Acme 2", "domain": "acme.io"})
    assert len((await reads.search(tenant_id, "company", DOMAIN, limit=5)).records) == 2
    await writes.unassociate(
        tenant_id,
        Association(
            from_object_type="contact",
            from_record_id=c.record_id,
            to_object_type="company",
            to_record_id=co.record_id,
        ),
    )
    assert await reads.list_associations(tenant_id, "contact", c.record_id, "company") == []


async def test_change_events_from_elsewhere_invalidate(
    store: SqlRecordStore, seed: Seeder, tenant_id: str
) -> None:
    records = RecordCache()
    steps = StepCache(records=records)
    reads = CachedReads(store, records)
    c = await seed.create("contact", firstname="ann")
    await reads.get(tenant_id, "contact", c.record_id)
    await store.update(tenant_id, "contact", c.record_id, {"firstname": "bo"})  # not seen
    assert (await reads.get(tenant_id, "contact", c.record_id)).properties["firstname"] == "ann"
    steps.on_change_events(
        [
            ChangeEvent(
                event_id="e",
                tenant_id=tenant_id,
                event_type=ChangeEventType.RECORD_UPDATED,
                object_type="contact",
                record_id=c.record_id,
                occurred_at=datetime.now(UTC),
            )
        ]
    )
    assert (await reads.get(tenant_id, "contact", c.record_id)).properties["firstname"] == "bo"


async def test_a_read_racing_a_write_is_not_kept(
    store: SqlRecordStore, seed: Seeder, tenant_id: str
) -> None:
    records = RecordCache()
    c = await seed.create("contact", firstname="ann")
    gen = records.generation(tenant_id, "contact")
    stale = await store.get(tenant_id, "contact", c.record_id)
    records.invalidate(tenant_id, "contact", [c.record_id])  # a write landed meanwhile
    records.put_records(tenant_id, [stale], {"contact": gen})
    assert records.records.get((tenant_id, "contact", c.record_id)) is None


async def test_tenants_never_share_entries(store: SqlRecordStore, tenant_id: str) -> None:
    records = RecordCache()
    reads = CachedReads(store, records)
    other = tenant_id + "z"
    await store.create(tenant_id, "contact", {"firstname": "ann"}, record_id="same")
    await store.create(other, "contact", {"firstname": "eve"}, record_id="same")
    assert (await reads.get(tenant_id, "contact", "same")).properties["firstname"] == "ann"
    assert (await reads.get(other, "contact", "same")).properties["firstname"] == "eve"
    assert (await reads.batch_get(other, "contact", ["same"]))[0].properties["firstname"] == "eve"


async def test_a_later_step_reuses_records_read_by_an_earlier_one(
    store: SqlRecordStore, seed: Seeder, tenant_id: str
) -> None:
    records = RecordCache()
    steps = StepCache(records=records)
    resolver = Resolver(CachedReads(steps.invalidating(store), records), steps)
    c = await seed.create("contact", firstname="ann", email="a@acme.io")
    await seed.create("company", name="Acme", domain="acme.io")
    src = DataSource(
        source_id="co", kind=DataSourceKind.PROPERTY_MATCH, object_type="company",
        property="domain", enrolled_property="email", transform="email_domain",
    )  # fmt: skip

    def req(step: str) -> ResolveRequest:
        return ResolveRequest(
            tenant_id=tenant_id, workflow_id="wf", revision=1, object_type="contact",
            record_id=c.record_id, action_id=step, fields={"x": "{{ sources.co.name }}"},
            data_sources=[src], step_key=step,
        )  # fmt: skip

    assert (await resolver.resolve(req("s1"))).values == {"x": "Acme"}
    misses = records.misses
    assert (await resolver.resolve(req("s2"))).values == {"x": "Acme"}
    assert records.misses == misses


async def test_resolved_sources_are_cached_across_steps_and_dropped_by_what_they_depend_on(
    store: SqlRecordStore, seed: Seeder, tenant_id: str
) -> None:
    records = RecordCache()
    steps = StepCache(records=records)
    writes = steps.invalidating(store)
    reads = CachedReads(writes, records)
    c = await seed.create("contact", firstname="ann")
    old = await seed.create("deal", dealname="old")
    new = await seed.create("deal", dealname="new")
    for d in (old, new):
        await writes.associate(
            tenant_id,
            Association(
                from_object_type="contact", from_record_id=c.record_id,
                to_object_type="deal", to_record_id=d.record_id,
            ),
        )  # fmt: skip
    newest = DataSource(
        source_id="newest", kind=DataSourceKind.ASSOCIATED, object_type="deal",
        reduce=ReduceRule.MOST_RECENTLY_CREATED,
    )  # fmt: skip
    touched = newest.model_copy(
        update={"source_id": "touched", "reduce": ReduceRule.MOST_RECENTLY_UPDATED}
    )

    async def picked(src: DataSource) -> str | None:
        got = await reads.resolve_sources(tenant_id, "contact", c.record_id, [src])
        rec = got.sources[src.source_id]
        return rec.properties["dealname"] if rec else None

    assert await picked(newest) == "new" and await picked(touched) == "new"
    misses = records.misses
    assert await picked(newest) == "new" and await picked(touched) == "new"
    assert records.misses == misses  # a later step: both from the cache
    # The other candidate changes: the creation rule's pick cannot move (kept), the update
    # rule's can (dropped with any change of its type).
    seed.clock.tick()
    await writes.update(tenant_id, "deal", old.record_id, {"amount": 5})
    assert await picked(newest) == "new"
    assert records.misses == misses
    assert await picked(touched) == "old"
    assert records.misses == misses + 1
    # The picked record changes: dropped.
    seed.clock.tick()
    await writes.update(tenant_id, "deal", new.record_id, {"dealname": "renamed"})
    assert await picked(newest) == "renamed"
    # A new association changes the enrolled record's links: dropped.
    newer = await seed.create("deal", dealname="newer")
    await writes.associate(
        tenant_id,
        Association(
            from_object_type="contact", from_record_id=c.record_id,
            to_object_type="deal", to_record_id=newer.record_id,
        ),
    )  # fmt: skip
    assert await picked(newest) == "newer"
    # Never across tenants.
    got = await reads.resolve_sources(tenant_id + "z", "contact", c.record_id, [newest])
    assert got.sources == {"newest": None}


async def test_a_source_read_racing_a_write_is_not_kept(
    store: SqlRecordStore, seed: Seeder, tenant_id: str
) -> None:
    records = RecordCache()
    src = DataSource(source_id="d", kind=DataSourceKind.ASSOCIATED, object_type="deal")
    key = (tenant_id, "contact", "c1", src.model_dump_json())
    gens = {"contact": records.generation(tenant_id, "contact"), "deal": 0}
    records.invalidate(tenant_id, "contact", ["c1"])  # a write landed meanwhile
    records.put_source(key, src, None, gens)
    assert records.get_source(key, src) == (False, None)

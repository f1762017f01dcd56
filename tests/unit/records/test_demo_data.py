"""The demo data set: deterministic, valid against the schema, realistic, loadable twice."""

from __future__ import annotations

from datetime import UTC, datetime

from crmflow.model.criteria import FilterGroup
from crmflow.records.demo_data import generate, load
from crmflow.records.sql import SqlRecordStore

ANCHOR = datetime(2026, 3, 1, tzinfo=UTC)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = generate(3, anchor=ANCHOR), generate(3, anchor=ANCHOR), generate(4, anchor=ANCHOR)
    assert a.records == b.records and a.associations == b.associations
    assert a.records != c.records
    assert {ot: len(a.of(ot)) for ot in ("contact", "company", "deal", "ticket")} == {
        "contact": 300,
        "company": 60,
        "deal": 120,
        "ticket": 80,
    }
    assert len({r.properties["email"] for r in a.of("contact")}) == 300


async def test_loads_through_the_port_and_again_without_duplicates(
    sql_store: SqlRecordStore,
) -> None:
    ds = generate(anchor=ANCHOR)
    progress: list[tuple[str, int, int]] = []
    counts = await load(sql_store, "demo", ds, progress=lambda *p: progress.append(p))
    assert counts["contact"] == 300 and counts["associations"] == len(ds.associations)
    assert ("contact", 300, 300) in progress
    assert await sql_store.count("demo", "contact") == 300
    assert len(await sql_store.list_owners("demo")) == 10
    customers = FilterGroup.model_validate(
        {"filters": [{"property": "lifecyclestage", "operator": "eq", "value": "customer"}]}
    )
    n_customers = await sql_store.count("demo", "contact", customers)
    assert 20 < n_customers < 100
    deal = (await sql_store.search("demo", "deal", limit=1)).records[0]
    assert await sql_store.list_associations("demo", "deal", deal.record_id, "company")
    small = generate(9, anchor=ANCHOR, contacts=20, companies=4, deals=5, tickets=3)
    await load(sql_store, "small", small)
    await load(sql_store, "small", small)
    assert await sql_store.count("small", "contact") == 20
    assert await sql_store.count("small", "deal") == 5
    assert len(await sql_store.list_lists("small")) == 1

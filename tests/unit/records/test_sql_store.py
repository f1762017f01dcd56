"""Embedded-store specifics the contract suite can't see: migrations, the Python fallback for
operators without a SQL form, concurrent writers on SQLite, the adapter factory."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from crmflow.criteria import OPERATORS, Operator
from crmflow.criteria.values import as_number
from crmflow.db import create_engine
from crmflow.model.criteria import FilterGroup
from crmflow.records.factory import open_record_store
from crmflow.records.grpc_adapter import GrpcRecordStore
from crmflow.records.migrations import migrate
from crmflow.records.outbox import OutboxDispatcher
from crmflow.records.sql import SqlRecordStore
from crmflow.records.sql_filters import needs_python
from crmflow.records.tables import CRM_METADATA
from crmflow.settings import ConfigurationError, Settings


async def test_migrations_match_the_tables_and_rerun_cleanly(db_url: str) -> None:
    await migrate(db_url)
    await migrate(db_url)  # already at head: a no-op
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(
                        c,
                        opts={
                            "version_table": "crm_alembic_version",
                            # Other services may share the database; judge only our tables.
                            "include_name": lambda name, kind, _parent: (
                                kind != "table" or name in CRM_METADATA.tables
                            ),
                        },
                    ),
                    CRM_METADATA,
                )
            )
    finally:
        await engine.dispose()
    assert [d for d in diff if "crm_alembic_version" not in str(d)] == []


@pytest.fixture
def is_even(monkeypatch: pytest.MonkeyPatch) -> str:
    """A newer operator without a SQL translation."""
    op = Operator(
        "is_even",
        "is even",
        "none",
        ("number",),
        lambda f: lambda v, now: (n := as_number(v)) is not None and n % 2 == 0,
    )
    monkeypatch.setitem(OPERATORS, "is_even", op)
    return "is_even"


async def test_operators_without_sql_fall_back_to_the_evaluator(
    sql_store: SqlRecordStore, is_even: str
) -> None:
    made = await sql_store.batch_create(
        "t1", "contact", [{"num_employees": n} for n in (1, 2, 3, 4, 6)] + [{}]
    )
    co = await sql_store.create("t1", "company", {"name": "Even", "numberofemployees": 10})
    group = FilterGroup.model_validate(
        {"filters": [{"property": "num_employees", "operator": is_even}]}
    )
    assert needs_python(group)
    page = await sql_store.search("t1", "contact", group, limit=2)
    assert page.total == 3 and page.next_cursor
    rest = await sql_store.search("t1", "contact", group, limit=2, cursor=page.next_cursor)
    assert [r.properties["num_employees"] for r in page.records + rest.records] == [2, 4, 6]
    by_size = await sql_store.search("t1", "contact", group, sort="-num_employees")
    assert [r.properties["num_employees"] for r in by_size.records] == [6, 4, 2]
    assert await sql_store.count("t1", "contact", group) == 3
    from crmflow.records.port import Association

    await sql_store.associate(
        "t1",
        Association(
            from_object_type="contact",
            from_record_id=made[0].record_id,
            to_object_type="company",
            to_record_id=co.record_id,
        ),
    )
    scoped = FilterGroup.model_validate(
        {
            "filters": [
                {
                    "property": "numberofemployees",
                    "operator": is_even,
                    "association": {"object_type": "company"},
                }
            ]
        }
    )
    assert [r.record_id for r in (await sql_store.search("t1", "contact", scoped)).records] == [
        made[0].record_id
    ]


async def test_concurrent_writers_all_commit_and_lose_no_update(
    db_url: str, tenant_id: str
) -> None:
    """SQLite: BEGIN IMMEDIATE queues writers; PostgreSQL: rows are locked FOR UPDATE."""
    store = await SqlRecordStore.open(db_url)
    try:
        c = await store.create(tenant_id, "deal", {"dealname": "race", "amount": 0})

        async def bump(i: int) -> Any:
            return await store.update(tenant_id, "deal", c.record_id, {"amount": i})

        await asyncio.gather(
            *(bump(i) for i in range(1, 21)),
            *(store.create(tenant_id, "deal", {"dealname": f"d{i}"}) for i in range(20)),
        )
        hist = await store.property_history(tenant_id, "deal", c.record_id, "amount")
        assert len(hist) == 21  # the create + 20 distinct updates, none lost
        assert await store.count(tenant_id, "deal") == 21
        events = [
            e
            for e in await OutboxDispatcher(store, _never).pending(tenant_id)
            if e.record_id == c.record_id and e.changes
        ]
        # Each update's event saw the value the previous one committed: a chain 0 -> ... -> last.
        pairs = [
            (ch.old_value, ch.new_value)
            for e in events[1:]
            for ch in e.changes
            if ch.property == "amount"
        ]
        assert len(pairs) == 20 and pairs[0][0] == 0
        assert all(a[1] == b[0] for a, b in itertools.pairwise(pairs))
    finally:
        await store.close()


async def _never(_: Any) -> None:  # pragma: no cover - never delivered in these tests
    raise AssertionError


async def test_factory_picks_the_adapter_from_settings(tmp_path: Path) -> None:
    owner = await open_record_store(Settings(data_dir=tmp_path), owner=True)
    try:
        assert isinstance(owner, SqlRecordStore)
        assert owner.engine.url.database == str(tmp_path / "crm.db")
        await owner.create("t1", "contact", {"email": "f@x.test"})  # migrated: tables exist
    finally:
        await owner.close()  # type: ignore[attr-defined]
    client = await open_record_store(
        Settings(data_dir=tmp_path, datasource_resolver_address="127.0.0.1:1"), owner=False
    )
    assert isinstance(client, GrpcRecordStore)
    await client.close()
    remote = await open_record_store(
        Settings(crm_mode="grpc", crm_address="crm.example:443"), owner=True
    )
    assert isinstance(remote, GrpcRecordStore)
    await remote.close()
    with pytest.raises(ConfigurationError):
        await open_record_store(Settings(crm_mode="grpc"), owner=False)


@pytest.mark.parametrize("threshold", [0, 10_000])  # never walk / always walk
async def test_both_sqlite_search_plans_return_the_same_pages(
    sql_store: SqlRecordStore, monkeypatch: pytest.MonkeyPatch, threshold: int
) -> None:
    """SQLite search picks its plan by the match count; both plans must give the same pages."""
    import crmflow.records.sql_search as search_module

    monkeypatch.setattr(search_module, "WALK_COST_RATIO", threshold)
    made = await sql_store.batch_create(
        "t1", "contact", [{"lifecyclestage": "lead" if i % 3 else "customer"} for i in range(30)]
    )
    leads = [r.record_id for r in made if r.properties["lifecyclestage"] == "lead"]
    group = FilterGroup.model_validate(
        {"filters": [{"property": "lifecyclestage", "operator": "eq", "value": "lead"}]}
    )
    for sort, want in (("", leads), ("-createdate", leads[::-1])):
        first = await sql_store.search("t1", "contact", group, limit=15, sort=sort)
        rest = await sql_store.search(
            "t1", "contact", group, limit=15, sort=sort, cursor=first.next_cursor
        )
        assert [r.record_id for r in first.records + rest.records] == want
        assert first.total == len(leads) == 20


async def test_concurrent_retries_with_one_idempotency_key_make_one_record(
    db_url: str, tenant_id: str
) -> None:
    store = await SqlRecordStore.open(db_url)
    try:
        made = await asyncio.gather(
            *(
                store.create(tenant_id, "deal", {"dealname": "once"}, idempotency_key="same-key")
                for _ in range(5)
            )
        )
        assert len({r.record_id for r in made}) == 1
        assert await store.count(tenant_id, "deal") == 1
    finally:
        await store.close()

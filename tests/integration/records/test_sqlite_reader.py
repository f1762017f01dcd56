"""The SQLite store's reader connection (``SqliteReader``): hot reads on a thread of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crmflow.errors import NotFound
from crmflow.model.data_sources import DataSource, DataSourceKind
from crmflow.records.sql import SqlRecordStore


async def test_reads_see_committed_writes_and_survive_close(tmp_path: Path) -> None:
    store = await SqlRecordStore.open(f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}")
    try:
        assert store.reader is not None
        a = await store.create("t1", "contact", {"email": "a@x.test"})
        assert (await store.get("t1", "contact", a.record_id)).properties["email"] == "a@x.test"
        await store.update("t1", "contact", a.record_id, {"email": "b@x.test"})
        # Each read is its own snapshot: the committed update is visible at once.
        assert (await store.get("t1", "contact", a.record_id)).properties["email"] == "b@x.test"
        got = await store.batch_get("t1", "contact", [a.record_id, "nope", a.record_id])
        assert [r.record_id for r in got] == [a.record_id]
        with pytest.raises(NotFound):
            await store.get("t2", "contact", a.record_id)  # another tenant's
        # Like engine.dispose(): closing (twice) leaves the store usable.
        await store.close()
        await store.close()
        assert (await store.get("t1", "contact", a.record_id)).record_id == a.record_id
    finally:
        await store.close()


async def test_reads_do_not_wait_for_an_open_write_transaction(tmp_path: Path) -> None:
    store = await SqlRecordStore.open(f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}")
    try:
        a = await store.create("t1", "contact", {"email": "a@x.test"})
        async with store.write() as conn:  # BEGIN IMMEDIATE: the write lock is held
            await conn.exec_driver_sql("SELECT 1")
            # WAL: the reader reads the last committed state without waiting for the lock.
            got = await store.get("t1", "contact", a.record_id)
            assert got.properties["email"] == "a@x.test"
    finally:
        await store.close()


async def test_in_memory_databases_read_through_the_pool() -> None:
    from sqlmodel import SQLModel

    import crmflow.records.tables  # noqa: F401  (registers the tables)

    store = await SqlRecordStore.open("sqlite+aiosqlite:///:memory:", migrate=False)
    try:
        assert store.reader is None  # a second connection would see another, empty database
        async with store.engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)
        c = await store.create("t1", "contact", {"email": "a@x.test"})
        co = await store.create("t1", "company", {"name": "X", "domain": "x.test"})
        assert (await store.get("t1", "contact", c.record_id)).record_id == c.record_id
        src = DataSource(
            source_id="co", kind=DataSourceKind.PROPERTY_MATCH, object_type="company",
            property="domain", enrolled_property="email", transform="email_domain",
        )  # fmt: skip
        got = await store.resolve_sources("t1", "contact", c.record_id, [src], include_record=True)
        assert got.record is not None and got.record.record_id == c.record_id
        assert got.sources["co"] is not None and got.sources["co"].record_id == co.record_id
    finally:
        await store.close()


async def test_concurrent_reads_share_hand_offs_and_keep_their_own_results(
    tmp_path: Path,
) -> None:
    import asyncio
    import sqlite3

    from crmflow.records.sql_base import SqliteReader

    path = tmp_path / "r.db"
    with sqlite3.connect(path) as c:
        c.execute("create table t (n integer)")
        c.executemany("insert into t values (?)", [(i,) for i in range(50)])
    reader = SqliteReader(str(path))
    drains = 0
    original = reader._drain

    def counting(loop: asyncio.AbstractEventLoop) -> None:
        nonlocal drains
        drains += 1
        original(loop)

    reader._drain = counting  # type: ignore[method-assign]

    def read(n: int) -> Any:
        def fn(conn: sqlite3.Connection) -> int:
            if n == 13:
                raise ValueError("unlucky")
            return int(conn.execute("select n * 2 from t where n = ?", (n,)).fetchone()[0])

        return fn

    results = await asyncio.gather(
        *[reader.run(read(n)) for n in range(50)], return_exceptions=True
    )
    assert [r for i, r in enumerate(results) if i != 13] == [n * 2 for n in range(50) if n != 13]
    assert isinstance(results[13], ValueError)  # only its own caller sees the error
    assert drains < 50  # queued reads rode along in a running drain
    # A cancelled caller does not disturb the others, and the reader keeps working.
    slow = asyncio.ensure_future(reader.run(read(1)))
    slow.cancel()
    assert await reader.run(read(2)) == 4
    await reader.close()

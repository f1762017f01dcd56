"""How the ledger's per-event statements reach the database: a whole read or a whole write
transaction in ONE trip.

Why: through SQLAlchemy's aiosqlite adapter every step of a session (checkout, cursor, execute,
fetch, commit, the pool's rollback on return) is a hand-off to aiosqlite's worker thread and
back, each a GIL hand-off on a busy machine; an ingested event cost ~40 of them. Here the
ledger writes its hot operations as plain synchronous functions over a SQLAlchemy Core
``Connection`` and this module runs each function in one go:

* SQLite file: connections of our own (stdlib ``sqlite3`` under SQLAlchemy's sync pysqlite
  dialect, so types are processed exactly as on the async engine). Writes run on a worker
  thread of their own, one executor call per transaction whatever the function does inside,
  and begin with ``BEGIN IMMEDIATE`` (the reads inside the transaction see what the write
  will be based on; no "database is locked" upgrade failure); a write may wait for another
  process's lock (busy timeout), which must not stall the event loop. Reads run right on the
  event loop, on a query-only connection in autocommit: each statement is its own WAL
  snapshot, and a WAL reader does not wait for writers, so a primary-key read costs tens of
  microseconds where a hand-off to a thread and back costs more (and, on a busy machine, a
  wait for the GIL). In the rare cases a WAL read can be told "busy" (a checkpoint restarting
  the log, recovery after a crash) it gives up after ``READ_BUSY_S`` and goes to the thread.
* PostgreSQL (and in-memory SQLite, where only the pool's connection sees the database): the
  same functions through ``AsyncConnection.run_sync``; reads in AUTOCOMMIT (no BEGIN, no
  ROLLBACK on return to the pool), writes in one transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

_READ = "ledger_read"
# How long a read on the event loop may wait for SQLite's lock before it moves to the thread.
READ_BUSY_S = 0.02


def sqlite_file(engine: AsyncEngine) -> str | None:
    """The database file of a SQLite engine (None: PostgreSQL or an in-memory database)."""
    if engine.dialect.name != "sqlite":
        return None
    db = engine.url.database
    if not db or db == ":memory:" or str(db).startswith("file:"):
        return None
    return str(db)


def _sync_sqlite_engine(path: str, *, reader: bool = False) -> sa.Engine:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(
            path,
            timeout=READ_BUSY_S if reader else 30,
            isolation_level=None,
            check_same_thread=False,
        )
        if reader:
            conn.execute("PRAGMA query_only=ON")
        else:
            conn.execute("PRAGMA journal_mode=WAL")  # as crmflow.db.create_engine
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        return conn

    # One connection, used only from one thread (the worker's, or the event loop's: reader).
    engine = sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.StaticPool)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # isolation_level=None: the driver never begins by itself; we do, for writes only.
        if not conn.get_execution_options().get(_READ, False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _busy(exc: OperationalError) -> bool:
    msg = str(exc.orig).lower()
    return "locked" in msg or "busy" in msg


class LedgerConn:
    """Runs ``fn(connection)`` as one read (``read``) or one write transaction (``write``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._path = sqlite_file(engine)
        self._sync: sa.Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._reader: sa.Engine | None = None
        self._reader_thread = 0  # the one thread (an event loop's) that uses the reader

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        if self._thread is None:
            assert self._path is not None
            self._sync = _sync_sqlite_engine(self._path)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="enrollment-ledger")
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """``fn``'s statements, each its own snapshot (autocommit); ``fn`` must not write."""
        if self._path is not None:
            if self._reader is None:
                self._reader = _sync_sqlite_engine(self._path, reader=True)
                self._reader_thread = threading.get_ident()
            if self._reader_thread == threading.get_ident():  # else: an event loop elsewhere
                try:
                    with self._reader.connect() as c:
                        return fn(c.execution_options(**{_READ: True}))
                except OperationalError as exc:
                    if not _busy(exc):
                        raise

            def run() -> T:
                assert self._sync is not None
                with self._sync.connect() as c:
                    return fn(c.execution_options(**{_READ: True}))

            return await self._in_thread(run)
        async with self.engine.connect() as ac:
            if self.engine.dialect.name != "sqlite":
                ac = await ac.execution_options(isolation_level="AUTOCOMMIT")
            return await ac.run_sync(fn)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` in one transaction, committed when it returns, rolled back when it raises
        (the exception, e.g. an IntegrityError, reaches the caller)."""
        if self._path is not None:

            def run() -> T:
                assert self._sync is not None
                with self._sync.begin() as c:
                    return fn(c)

            return await self._in_thread(run)
        async with self.engine.begin() as ac:
            return await ac.run_sync(fn)

    async def close(self) -> None:
        """Close the connections and stop the thread (the next call opens them again)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.dispose()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        sync = self._sync

        def shut() -> None:
            if sync is not None:
                sync.dispose()

        await asyncio.get_running_loop().run_in_executor(thread, shut)
        thread.shutdown(wait=False)

"""Plumbing shared by the embedded store's parts: transactions, schema cache, outbox writes.

SQLite: write transactions start with ``BEGIN IMMEDIATE`` so two writers queue on the busy
timeout instead of one failing with "database is locked" when it upgrades a read lock (the
classic WAL deadlock); reads run statement by statement (autocommit), see ``_begin``, and the
hot ones (get, batch_get, list_associations, resolve_sources) on the store's own reader
connection (``SqliteReader``, ``SqlBase.read_rows``), where Records are built from the
driver's rows directly (``_Compiled.record``, ``SqlBase.read_records``; tests/integration/
datasource/test_raw_reads.py holds them equal to SQLAlchemy's execution).
PostgreSQL: rows being changed are read ``FOR UPDATE``, so concurrent updates of one record see
each other's old values correctly.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import sqlite3
import threading
import time
from collections import namedtuple
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crmflow.errors import InvalidArgument, NotFound
from crmflow.model.records import ChangeEvent, ChangeEventType, PropertyChange, Record
from crmflow.records.port import ObjectTypeDefinition, PropertyDefinition, PropertyType
from crmflow.records.schema import STANDARD_OBJECT_TYPES, STANDARD_PROPERTIES, Schema
from crmflow.records.schema import unknown_object_type as _unknown_type
from crmflow.records.sql_filters import value_rows
from crmflow.records.tables import (
    CrmObjectType,
    CrmOutbox,
    CrmProperty,
    CrmPropertyHistory,
    CrmRecord,
    CrmValue,
)

R = CrmRecord.__table__  # type: ignore[attr-defined]
VAL = CrmValue.__table__  # type: ignore[attr-defined]
HIST = CrmPropertyHistory.__table__  # type: ignore[attr-defined]
OUTBOX = CrmOutbox.__table__  # type: ignore[attr-defined]
OTYPE = CrmObjectType.__table__  # type: ignore[attr-defined]
PROP = CrmProperty.__table__  # type: ignore[attr-defined]

# One record by primary key, every operand a bindparam: built once (see SqlBase.read_rows).
RECORD_BY_ID = sa.select(R).where(
    R.c.tenant_id == sa.bindparam("t"),
    R.c.object_type == sa.bindparam("ot"),
    R.c.record_id == sa.bindparam("rid"),
)

T = TypeVar("T")

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$")
SYSTEM_PROPS = ("createdate", "lastmodifieddate")


def new_id() -> str:
    """Time-ordered, unguessable ids: ms timestamp + a process-wide sequence (so ids made in the
    same millisecond, e.g. one batch, still sort in creation order) + 32 random bits."""
    return f"{int(time.time() * 1000):011x}{next(_SEQ) % 0x10000:04x}{secrets.token_hex(4)}"


_SEQ = itertools.count()


def check_id(value: str, field: str, what: str = "id") -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise InvalidArgument.field(
            field, f"{value!r} is not a valid {what} (1-64 letters, digits, '_.:@-')"
        )
    return value


def check_tenant(tenant_id: str) -> None:
    check_id(tenant_id, "tenant_id", "tenant id")


def record_not_found(object_type: str, record_id: str) -> NotFound:
    return NotFound(
        "record", f"{object_type}/{record_id}", f"{object_type} record {record_id!r} not found"
    )


def _install_sqlite_begin(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _autocommit_driver(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        if not conn.get_execution_options().get("crm_read", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        # Reads run in the driver's autocommit mode: each statement is its own snapshot, which
        # saves two thread hops per read (aiosqlite); a search's page and count may then see
        # different snapshots under concurrent writes (documented, harmless).


class _Compiled:
    """A read statement compiled once for the SQLite reader: SQL text, where each positional
    parameter comes from (a caller's bindparam or a constant such as LIMIT's), column names and
    result processors equivalent to SQLAlchemy's (JSON, aware datetimes).

    ``rows`` gives named rows; ``record(raw)`` builds the ``Record`` of a driver row straight
    away when the statement selects crm_record's columns (the hot reads: no named row, one
    processor call per converted column)."""

    def __init__(self, stmt: Any, dialect: Any) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = str(compiled)
        names = compiled.positiontup or list(compiled.binds)  # qmark (SQLite) / pyformat (PG)
        self.slots = [
            (name, None if bind.required else bind.effective_value)
            for name in names
            for bind in [compiled.binds[name]]
        ]
        cols = list(stmt.selected_columns)
        keys = [c.key for c in cols]
        self.row = namedtuple("Row", keys, rename=True)  # type: ignore[misc]
        self.processors = [_processor(c.type, dialect) for c in cols]
        # (index, processor) of the columns that have one; the others pass through as they are.
        self._converted = [(i, p) for i, p in enumerate(self.processors) if p is not None]
        self.index = {k: i for i, k in enumerate(keys)}
        self._record_at = (
            tuple(self.index[k] for k in _RECORD_COLUMNS)
            if all(k in self.index for k in _RECORD_COLUMNS)
            else None
        )

    def args(self, params: dict[str, Any]) -> list[Any]:
        return [params[name] if const is None else const for name, const in self.slots]

    def named(self, params: dict[str, Any]) -> dict[str, Any]:
        return {name: params[name] if const is None else const for name, const in self.slots}

    def rows(self, raw: Iterable[Any]) -> list[Any]:
        converted = self._converted
        make = self.row._make  # type: ignore[attr-defined]
        out = []
        for r in raw:
            if converted:
                r = list(r)
                for i, p in converted:
                    r[i] = p(r[i])
            out.append(make(r))
        return out

    def record(self, raw: Sequence[Any]) -> Record:
        """The Record of one driver row (the statement selects crm_record's columns)."""
        if self._record_at is None:
            raise TypeError("the statement does not select crm_record's columns")
        t, o, r, p, c, u = self._record_at
        procs = self.processors
        props, created, updated = raw[p], raw[c], raw[u]
        if (proc := procs[p]) is not None:
            props = proc(props)
        if (proc := procs[c]) is not None:
            created = proc(created)
        if (proc := procs[u]) is not None:
            updated = proc(updated)
        return new_record(raw[t], raw[o], raw[r], props or {}, created, updated)


_RECORD_COLUMNS = (
    "tenant_id",
    "object_type",
    "record_id",
    "properties",
    "created_at",
    "updated_at",
)
_RECORD_FIELDS = frozenset(_RECORD_COLUMNS)
_set = object.__setattr__


def _fast_record_ok() -> bool:
    """Whether ``new_record`` may skip ``model_construct``: every field given, nothing that
    construct would add (aliases, private attributes, post-init, extras)."""
    fields = Record.model_fields
    return (
        set(fields) == _RECORD_FIELDS
        and not Record.__private_attributes__
        and not Record.__pydantic_post_init__
        and not Record.__pydantic_root_model__
        and Record.model_config.get("extra") != "allow"
        and all(f.alias is None and f.validation_alias is None for f in fields.values())
    )


def _new_record_fast(
    tenant_id: str,
    object_type: str,
    record_id: str,
    properties: dict[str, Any],
    created_at: datetime | None,
    updated_at: datetime | None,
) -> Record:
    rec = Record.__new__(Record)
    _set(
        rec,
        "__dict__",
        {
            "tenant_id": tenant_id,
            "object_type": object_type,
            "record_id": record_id,
            "properties": properties,
            "created_at": created_at,
            "updated_at": updated_at,
        },
    )
    _set(rec, "__pydantic_fields_set__", set(_RECORD_FIELDS))
    _set(rec, "__pydantic_extra__", None)
    _set(rec, "__pydantic_private__", None)
    return rec


def _new_record_construct(
    tenant_id: str,
    object_type: str,
    record_id: str,
    properties: dict[str, Any],
    created_at: datetime | None,
    updated_at: datetime | None,
) -> Record:
    return Record.model_construct(
        tenant_id=tenant_id,
        object_type=object_type,
        record_id=record_id,
        properties=properties,
        created_at=created_at,
        updated_at=updated_at,
    )


# ``Record.model_construct`` of the store's own (validated when written) values: what pydantic's
# construct leaves on the instance, set directly (~5x cheaper; one per row read). Should Record
# grow something construct has to handle, construct it is.
new_record = _new_record_fast if _fast_record_ok() else _new_record_construct


def _utc_from_sqlite(value: Any) -> datetime | None:
    # What UTCDateTime over SQLite's DateTime gives, without its regex: SQLite keeps
    # "YYYY-MM-DD HH:MM:SS[.ffffff]" (naive UTC), which fromisoformat (C) parses; with the UTC
    # offset appended it comes out aware from the same call. Any other shape (an offset
    # already there) takes the general path.
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value + "+00:00")
        if when.tzinfo is UTC:  # (3.11 reads "YYYY-MM-DD+00:00" as a naive midnight)
            return when
    except (TypeError, ValueError):
        pass
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # json.loads' C scanner


def _json_from_sqlite(fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """SQLAlchemy's SQLite JSON processor (``fallback``) without ``json.loads``' Python layers
    for the usual value, a document without surrounding whitespace; all else goes to it."""

    def process(value: Any) -> Any:
        if type(value) is str:
            try:
                doc, end = _scan_json(value, 0)
            except StopIteration:  # leading whitespace, or not JSON: the fallback decides
                return fallback(value)
            if end == len(value):
                return doc
        return fallback(value)

    return process


def _processor(type_: Any, dialect: Any) -> Callable[[Any], Any] | None:
    from crmflow.records.tables import UTCDateTime

    if isinstance(type_, UTCDateTime) and dialect.name == "sqlite":
        return _utc_from_sqlite
    proc: Callable[[Any], Any] | None = type_.dialect_impl(dialect).result_processor(dialect, None)
    if proc is not None and dialect.name == "sqlite" and isinstance(type_, sa.JSON):
        return _json_from_sqlite(proc)
    return proc


class SqliteReader:
    """One autocommit, query-only sqlite3 connection on one worker thread of its own.

    Each statement is its own WAL snapshot and never blocks writers. Writes keep going through
    the engine's pool (``BEGIN IMMEDIATE``, see ``_begin``).

    Reads that arrive while the thread is busy are coalesced: the thread drains every queued
    read in one pass and hands all their results back to the event loop in one callback, so
    under concurrency a read costs no thread hand-off of its own (one executor job and one
    loop wake-up per batch instead of per read). Alone, a read is one hop as before.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._pool: ThreadPoolExecutor | None = None
        # (work, future, loop) queued for the thread; the lock guards _draining with it.
        self._queue: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._lock = threading.Lock()
        self._draining = False

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA query_only=ON")
            self._conn = conn
        return self._conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="crm-sqlite-reader")
        fut: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._queue.append((fn, fut))
            start = not self._draining
            self._draining = True
        if start:
            self._pool.submit(self._drain, loop)
        return await fut

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the reader thread: run queued reads until none is left."""
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._draining = False
                    return
            done: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
            for fn, fut in batch:
                try:
                    done.append((fut, fn(self._connection()), None))
                except BaseException as exc:  # handed to the awaiting coroutine
                    done.append((fut, None, exc))
            try:
                loop.call_soon_threadsafe(_settle, done)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                with self._lock:
                    self._queue.clear()
                    self._draining = False
                return

    async def close(self) -> None:
        """Close the connection and stop the thread; like ``engine.dispose()`` the store stays
        usable (the next read opens them again) and closing twice is harmless."""
        pool, self._pool = self._pool, None
        if pool is None:
            return

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        # Queued after any pending drain on the same single thread: reads finish first.
        await asyncio.get_running_loop().run_in_executor(pool, shut)
        pool.shutdown(wait=False)


def _settle(done: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, result, exc in done:
        if fut.cancelled():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)


class PgRun(Protocol):
    """``SqlBase.pg_reads``' statement runner."""

    def __call__(
        self, stmt: Any, params: dict[str, Any], *, raw: bool = False
    ) -> Awaitable[list[Any]]: ...


class SqlBase:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Callable[[], datetime] | None = None,
        schema_ttl: float = 30.0,
    ) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        if self.sqlite:
            _install_sqlite_begin(engine)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._schema_ttl = schema_ttl
        self._schemas: dict[tuple[str, str], tuple[float, Schema]] = {}
        self._type_sizes: dict[tuple[str, str], tuple[float, int]] = {}  # plan hints (search)
        # SQLite (a file): hot reads run on one reader connection of our own; PostgreSQL: on
        # psycopg directly. See read_rows.
        db = engine.url.database if self.sqlite else None
        file_db = bool(db) and db != ":memory:" and not str(db).startswith("file:")
        self.reader = SqliteReader(str(db)) if file_db else None
        self._compiled: dict[Any, _Compiled] = {}

    def now(self) -> datetime:
        return self._clock()

    async def close(self) -> None:
        if self.reader is not None:
            await self.reader.close()
        await self.engine.dispose()

    async def read_rows(self, stmt: Any, params: dict[str, Any]) -> list[Any]:
        """Rows of one read-only statement built once with bindparams (``params`` by name).

        Why: through SQLAlchemy's aiosqlite adapter a read costs ~5 hops to the driver's thread
        (cursor, execute, fetch, close, rollback on return to the pool) plus building and keying
        the statement, ~1 ms on a busy machine for a 14 us primary-key read. For a SQLite file
        the statement is compiled once and run on the store's reader (``SqliteReader``) in ONE
        hop, with result processors equivalent to SQLAlchemy's (JSON through json's C scanner
        and datetimes in one ``fromisoformat`` call on SQLite: the rows' decoding was a quarter
        of a cold resolution's CPU). PostgreSQL: the compiled statement on psycopg in
        autocommit (``pg_reads``).
        """
        if self.reader is not None:
            return await self.reader.run(lambda c: self.rows_sync(c, stmt, params))
        if self.sqlite:  # in-memory SQLite: the pool's connection is the database
            async with self.read() as conn:
                return list((await conn.execute(stmt, params)).all())
        async with self.pg_reads() as run:
            return await run(stmt, params)

    async def read_records(self, stmt: Any, params: dict[str, Any]) -> list[Record]:
        """``read_rows`` of a statement selecting crm_record's columns, as Records built from
        the driver's rows (``_Compiled.record``)."""
        if self.reader is not None:

            def work(conn: sqlite3.Connection) -> list[Record]:
                compiled, raw = self.raw_sync(conn, stmt, params)
                return [compiled.record(r) for r in raw]

            return await self.reader.run(work)
        if self.sqlite:  # in-memory SQLite: the pool's connection is the database
            return [self.to_record(r) for r in await self.read_rows(stmt, params)]
        async with self.pg_reads() as run:
            raw = await run(stmt, params, raw=True)
        compiled = self.compiled(stmt)
        return [compiled.record(r) for r in raw]

    @asynccontextmanager
    async def pg_reads(self) -> AsyncIterator[PgRun]:
        """PostgreSQL: one pooled connection running compiled statements straight on psycopg,
        in autocommit: one round trip per statement (plus the pool's ping per checkout), where
        SQLAlchemy's execution layer cost more than the query."""
        async with self.engine.connect() as conn:
            pg: Any = (await conn.get_raw_connection()).driver_connection
            await pg.set_autocommit(True)  # client-side: no BEGIN, no ROLLBACK on return

            async def run(stmt: Any, params: dict[str, Any], *, raw: bool = False) -> list[Any]:
                """Named rows; ``raw``: the driver's tuples (``self.compiled(stmt)`` reads
                them, e.g. ``.record(row)``)."""
                compiled = self.compiled(stmt)
                cur = await pg.execute(compiled.sql, compiled.named(params))
                rows = await cur.fetchall()
                return rows if raw else compiled.rows(rows)

            try:
                yield run
            finally:
                await pg.set_autocommit(False)

    def compiled(self, stmt: Any) -> _Compiled:
        found = self._compiled.get(stmt)
        if found is None:
            if len(self._compiled) > 4096:
                self._compiled.clear()
            found = self._compiled[stmt] = _Compiled(stmt, self.engine.dialect)
        return found

    def rows_sync(self, conn: sqlite3.Connection, stmt: Any, params: dict[str, Any]) -> list[Any]:
        """``read_rows`` on the reader's thread (several statements can share one hop)."""
        compiled = self.compiled(stmt)
        return compiled.rows(conn.execute(compiled.sql, compiled.args(params)).fetchall())

    def raw_sync(
        self, conn: sqlite3.Connection, stmt: Any, params: dict[str, Any]
    ) -> tuple[_Compiled, list[Any]]:
        """``rows_sync`` leaving the driver's rows as they are, with what reads them."""
        compiled = self.compiled(stmt)
        return compiled, conn.execute(compiled.sql, compiled.args(params)).fetchall()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        # No explicit begin/commit. SQLite: the driver is in autocommit mode (see _begin).
        # PostgreSQL: AUTOCOMMIT (a client-side switch in psycopg), so a read is its statements
        # alone - no BEGIN before them and no ROLLBACK when the connection goes back to the
        # pool, two round trips saved; each statement is its own snapshot, as on SQLite.
        async with self.engine.connect() as conn:
            if self.sqlite:
                yield await conn.execution_options(crm_read=True)
            else:
                yield await conn.execution_options(crm_read=True, isolation_level="AUTOCOMMIT")

    # Schema ---------------------------------------------------------------------------
    def cached_schema(self, tenant_id: str, object_type: str) -> Schema | None:
        hit = self._schemas.get((tenant_id, object_type))
        return hit[1] if hit and hit[0] > time.monotonic() else None

    async def schemas(self, tenant_id: str, object_types: Iterable[str]) -> dict[str, Any]:
        """Object type -> Schema, or the NotFound it raises; one read only for cache misses."""
        out: dict[str, Any] = {}
        todo = []
        for ot in dict.fromkeys(object_types):
            hit = self.cached_schema(tenant_id, ot)
            if hit is None:
                todo.append(ot)
            else:
                out[ot] = hit
        if todo:
            async with self.read() as conn:
                for ot in todo:
                    try:
                        out[ot] = await self.schema(conn, tenant_id, ot)
                    except NotFound as exc:
                        out[ot] = exc
        return out

    def forget_schema(self, tenant_id: str, object_type: str) -> None:
        self._schemas.pop((tenant_id, object_type), None)

    async def schema(self, conn: AsyncConnection, tenant_id: str, object_type: str) -> Schema:
        """Definitions of a type (NotFound if unknown). Cached: this process owns the store."""
        key = (tenant_id, object_type)
        hit = self._schemas.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        otype = STANDARD_OBJECT_TYPES.get(object_type)
        props = list(STANDARD_PROPERTIES.get(object_type, []))
        if otype is None:
            row = (
                await conn.execute(
                    sa.select(OTYPE).where(
                        OTYPE.c.tenant_id == tenant_id, OTYPE.c.name == object_type
                    )
                )
            ).first()
            if row is None:
                raise _unknown_type(object_type)
            otype = ObjectTypeDefinition(
                name=row.name, label=row.label, custom=True, primary_property=row.primary_property
            )
            props = [
                PropertyDefinition(
                    object_type=object_type, name=n, label=lbl, type=t, read_only=True
                )
                for n, lbl, t in (
                    ("createdate", "Create date", PropertyType.DATETIME),
                    ("lastmodifieddate", "Last modified date", PropertyType.DATETIME),
                )
            ]
        rows = await conn.execute(
            sa.select(PROP).where(PROP.c.tenant_id == tenant_id, PROP.c.object_type == object_type)
        )
        props += [
            PropertyDefinition(
                object_type=object_type,
                name=r.name,
                label=r.label,
                type=r.type,
                options=list(r.options or []),
                required=r.required,
                read_only=r.read_only,
            )
            for r in rows
        ]
        schema = Schema(otype, props)
        self._schemas[key] = (time.monotonic() + self._schema_ttl, schema)
        return schema

    # Rows -----------------------------------------------------------------------------
    @staticmethod
    def to_record(row: Any) -> Record:
        # Rows are the store's own (validated when written): construct without re-validating.
        return new_record(
            row.tenant_id,
            row.object_type,
            row.record_id,
            dict(row.properties or {}),
            row.created_at,
            row.updated_at,
        )

    async def fetch(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        object_type: str,
        ids: Iterable[str],
        *,
        lock: bool = False,
    ) -> dict[str, Any]:
        ids = list(dict.fromkeys(ids))
        out: dict[str, Any] = {}
        for i in range(0, len(ids), 500):
            q = sa.select(R).where(
                R.c.tenant_id == tenant_id,
                R.c.object_type == object_type,
                R.c.record_id.in_(ids[i : i + 500]),
            )
            if lock and not self.sqlite:
                q = q.with_for_update()
            out.update({r.record_id: r for r in await conn.execute(q)})
        return out

    async def require(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        object_type: str,
        record_id: str,
        *,
        lock: bool = False,
    ) -> Any:
        row = (await self.fetch(conn, tenant_id, object_type, [record_id], lock=lock)).get(
            record_id
        )
        if row is None:
            raise record_not_found(object_type, record_id)
        return row

    @staticmethod
    def value_rows_for(
        tenant_id: str, schema: Schema, record_id: str, values: dict[str, Any]
    ) -> list[dict[str, Any]]:
        ot = schema.object_type.name
        return [
            {
                "tenant_id": tenant_id,
                "object_type": ot,
                "property": name,
                "record_id": record_id,
                "value_text": text,
                "value_num": num,
            }
            for name, value in values.items()
            if name in schema.properties
            for text, num in value_rows(schema.properties[name], value)
        ]

    @staticmethod
    def history_rows_for(
        tenant_id: str,
        object_type: str,
        record_id: str,
        values: dict[str, Any],
        at: datetime,
        source: str,
    ) -> list[dict[str, Any]]:
        return [
            {
                "tenant_id": tenant_id,
                "object_type": object_type,
                "record_id": record_id,
                "property": k,
                "value": v,
                "changed_at": at,
                "source": source,
            }
            for k, v in values.items()
        ]

    async def write_values(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        schema: Schema,
        record_id: str,
        values: dict[str, Any],
        *,
        replace: bool,
    ) -> None:
        if replace and values:
            await conn.execute(
                VAL.delete().where(
                    VAL.c.tenant_id == tenant_id,
                    VAL.c.object_type == schema.object_type.name,
                    VAL.c.record_id == record_id,
                    VAL.c.property.in_(list(values)),
                )
            )
        rows = self.value_rows_for(tenant_id, schema, record_id, values)
        if rows:
            await conn.execute(VAL.insert(), rows)

    async def write_history(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        object_type: str,
        record_id: str,
        values: dict[str, Any],
        at: datetime,
        source: str,
    ) -> None:
        rows = self.history_rows_for(tenant_id, object_type, record_id, values, at, source)
        if rows:
            await conn.execute(HIST.insert(), rows)

    async def emit(self, conn: AsyncConnection, events: list[ChangeEvent]) -> None:
        """Outbox rows, in the caller's transaction (so a change and its event commit together)."""
        if not events:
            return
        now = self.now()
        await conn.execute(
            OUTBOX.insert(),
            [
                {
                    "tenant_id": e.tenant_id,
                    "event_id": e.event_id,
                    "payload": e.model_dump(mode="json"),
                    "created_at": now,
                    "next_attempt_at": now,
                    "attempts": 0,
                    "last_error": "",
                }
                for e in events
            ],
        )

    def event(
        self,
        tenant_id: str,
        event_type: ChangeEventType,
        object_type: str,
        record_id: str,
        *,
        changes: dict[str, tuple[Any, Any]] | None = None,
        at: datetime | None = None,
        **extra: Any,
    ) -> ChangeEvent:
        return ChangeEvent(
            event_id=new_id() + secrets.token_hex(3),
            tenant_id=tenant_id,
            event_type=event_type,
            object_type=object_type,
            record_id=record_id,
            occurred_at=at or self.now(),
            changes=[
                PropertyChange(property=k, old_value=o, new_value=n)
                for k, (o, n) in (changes or {}).items()
            ],
            **extra,
        )

"""The store's raw read path returns exactly what SQLAlchemy's own execution returns.

``resolve_sources`` (and get / batch_get) run their compiled statements on the driver directly
(the SQLite reader's connection, psycopg in autocommit) and build Records from the driver's
rows (``_Compiled.record``: SQLite's JSON and datetimes decoded by our own processors, the
Record set up without ``model_construct``). Here every statement such a call ran is run again
through SQLAlchemy (``conn.execute``: its result processors, pydantic's ``model_construct``)
and the Records must be equal field by field, types and time zones included. SQLite and
PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from crmflow.model.data_sources import DataSource, DataSourceKind, ReduceRule
from crmflow.model.records import Record
from crmflow.records import sql_base
from crmflow.records.sql import SqlRecordStore
from crmflow.records.sql_sources import ENROLLED
from crmflow.records.tables import UTCDateTime
from tests.integration.datasource.conftest import Seeder

# Property values that exercise the JSON round trip: unicode, escapes, numbers of several
# shapes, booleans, dates, lists, empty strings.
AWKWARD = {
    "firstname": 'Zoë "the" <b>\\ ünïcode ☃ 𝄞 \n\t',
    "email": "ann@acme.io",
    "num_employees": 12345678901234567,
    "annualrevenue": 0.1,
    "hs_email_optout": True,
    "date_of_birth": "1990-02-03",
    "interests": ["pricing", "events"],
    "city": "",
}

SOURCES = [
    DataSource(source_id="co", kind=DataSourceKind.ASSOCIATED, object_type="company",
               association_label="primary"),
    DataSource(source_id="deal", kind=DataSourceKind.ASSOCIATED, object_type="deal",
               reduce=ReduceRule.MOST_RECENTLY_CREATED),
    DataSource(source_id="dom", kind=DataSourceKind.PROPERTY_MATCH, object_type="company",
               property="domain", enrolled_property="email", transform="email_domain",
               reduce=ReduceRule.FIRST_CREATED),
    DataSource(source_id="val", kind=DataSourceKind.PROPERTY_VALUE, object_type="company",
               property="domain", value="other.io"),
    DataSource(source_id="none", kind=DataSourceKind.PROPERTY_VALUE, object_type="company",
               property="domain", value="nobody.io"),
]  # fmt: skip


class Recording:
    """Notes each (statement, params) the store runs on its raw path."""

    def __init__(self, store: SqlRecordStore) -> None:
        self.seen: list[tuple[Any, dict[str, Any]]] = []
        raw_sync, pg_reads = store.raw_sync, store.pg_reads

        def noting_raw_sync(conn: Any, stmt: Any, params: dict[str, Any]) -> Any:
            self.seen.append((stmt, dict(params)))
            return raw_sync(conn, stmt, params)

        @asynccontextmanager
        async def noting_pg_reads() -> AsyncIterator[Any]:
            async with pg_reads() as run:

                def noting(stmt: Any, params: dict[str, Any], **kw: Any) -> Awaitable[Any]:
                    self.seen.append((stmt, dict(params)))
                    return run(stmt, params, **kw)

                yield noting

        store.raw_sync = noting_raw_sync  # type: ignore[method-assign]
        store.pg_reads = noting_pg_reads  # type: ignore[method-assign]


async def _through_sqlalchemy(
    store: SqlRecordStore, stmt: Any, params: dict[str, Any]
) -> list[tuple[Any, Record]]:
    """(src tag or None, Record) per row, the way SQLAlchemy and pydantic build them."""
    names = set(stmt.compile().params)
    async with store.read() as conn:
        rows = (await conn.execute(stmt, {k: v for k, v in params.items() if k in names})).all()
    return [
        (
            getattr(r, "src", None),
            Record.model_construct(
                tenant_id=r.tenant_id,
                object_type=r.object_type,
                record_id=r.record_id,
                properties=dict(r.properties or {}),
                created_at=r.created_at,
                updated_at=r.updated_at,
            ),
        )
        for r in rows
    ]


def _same(ours: Record | None, theirs: Record | None) -> None:
    assert (ours is None) == (theirs is None)
    if ours is None or theirs is None:
        return
    assert ours == theirs
    assert ours.model_fields_set == theirs.model_fields_set
    assert ours.__pydantic_extra__ == theirs.__pydantic_extra__
    assert ours.__pydantic_private__ == theirs.__pydantic_private__
    assert ours.model_dump() == theirs.model_dump()
    assert json.dumps(ours.properties, sort_keys=True) == json.dumps(
        theirs.properties, sort_keys=True
    )
    for a, b in ((ours.created_at, theirs.created_at), (ours.updated_at, theirs.updated_at)):
        assert type(a) is type(b) and a == b
        assert a is not None and b is not None
        assert a.utcoffset() == b.utcoffset() and a.tzname() == b.tzname()


async def test_resolve_sources_raw_rows_equal_sqlalchemy_rows(
    store: SqlRecordStore, seed: Seeder, tenant_id: str
) -> None:
    contact = await seed.create("contact", **AWKWARD)
    co = await seed.create("company", name="Acme ☃", domain="acme.io", industry="a\u2028b\\")
    other = await seed.create("company", name="Other", domain="other.io")
    deal = await seed.create("deal", dealname="D", amount=1000.25)
    await seed.link(contact, co, "primary")
    await seed.link(contact, other)
    await seed.link(contact, deal)
    # Updated after creation: created_at and updated_at differ.
    contact = await seed.update(contact, city="Århus")
    co = await seed.update(co, industry="b\u2028a")
    rec = Recording(store)
    got = await store.resolve_sources(
        tenant_id, "contact", contact.record_id, SOURCES, include_record=True
    )
    assert {k: (r.record_id if r else None) for k, r in got.sources.items()} == {
        "co": co.record_id,
        "deal": deal.record_id,
        "dom": co.record_id,
        "val": other.record_id,
        "none": None,
    }
    # Two statements: the enrolled record (a property match needs it first), then the sources.
    assert len(rec.seen) == 2
    [(_, enrolled)] = await _through_sqlalchemy(store, *rec.seen[0])
    _same(got.record, enrolled)
    _same(got.record, contact)  # and what the write returned
    theirs = {tag: r for tag, r in await _through_sqlalchemy(store, *rec.seen[1])}
    assert ENROLLED not in theirs
    for i, src in enumerate(SOURCES):
        _same(got.sources[src.source_id], theirs.get(i))
    # Without a property match the enrolled record rides in the sources' statement.
    rec.seen.clear()
    got = await store.resolve_sources(
        tenant_id, "contact", contact.record_id, SOURCES[:2], include_record=True
    )
    [(stmt, params)] = rec.seen
    theirs = {tag: r for tag, r in await _through_sqlalchemy(store, stmt, params)}
    _same(got.record, theirs[ENROLLED])
    _same(got.sources["co"], theirs[0])
    _same(got.sources["deal"], theirs[1])


async def test_get_and_batch_get_equal_sqlalchemy_rows(
    store: SqlRecordStore, seed: Seeder, tenant_id: str
) -> None:
    a = await seed.create("contact", **AWKWARD)
    b = await seed.create("contact", email="b@x.io")
    b = await seed.update(b, annualrevenue=-2.5e-8, interests=[])
    for want in (a, b):
        _same(await store.get(tenant_id, "contact", want.record_id), want)
    got = await store.batch_get(tenant_id, "contact", [b.record_id, "nope", a.record_id])
    assert [r.record_id for r in got] == [b.record_id, a.record_id]
    _same(got[0], b)
    _same(got[1], a)
    # Against SQLAlchemy's own execution of the store's statement.
    [(_, ref)] = await _through_sqlalchemy(
        store, sql_base.RECORD_BY_ID, {"t": tenant_id, "ot": "contact", "rid": a.record_id}
    )
    _same(await store.get(tenant_id, "contact", a.record_id), ref)


def test_new_record_is_model_construct() -> None:
    when = datetime(2025, 5, 6, 7, 8, 9, 10, tzinfo=UTC)
    args = ("t1", "contact", "r1", {"a": [1]}, when, None)
    ours = sql_base.new_record(*args)
    theirs = Record.model_construct(
        tenant_id="t1", object_type="contact", record_id="r1", properties={"a": [1]},
        created_at=when, updated_at=None,
    )  # fmt: skip
    assert sql_base.new_record is sql_base._new_record_fast  # Record needs nothing construct adds
    assert type(ours) is Record
    assert ours == theirs and ours.__dict__ == theirs.__dict__
    assert ours.model_fields_set == theirs.model_fields_set
    assert ours.model_fields_set is not sql_base.new_record(*args).model_fields_set
    assert (ours.__pydantic_extra__, ours.__pydantic_private__) == (None, None)
    assert ours.model_dump() == theirs.model_dump()
    assert ours.model_dump_json() == theirs.model_dump_json()
    assert ours.model_copy(update={"record_id": "r2"}).record_id == "r2"
    assert Record.model_validate(ours.model_dump()) == ours


@pytest.mark.parametrize(
    "when",
    [
        None,
        datetime(2025, 5, 6, 7, 8, 9, 10, tzinfo=UTC),
        datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC),  # no fraction
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2025, 5, 6, 9, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_sqlite_datetimes_as_sqlalchemy_reads_them(when: datetime | None) -> None:
    """What SQLAlchemy writes for a UTCDateTime on SQLite reads back as SQLAlchemy reads it."""
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    col = UTCDateTime()
    stored = (
        sa.DateTime()
        .dialect_impl(dialect)
        .bind_processor(dialect)(col.process_bind_param(when, dialect))
    )
    assert stored is None or isinstance(stored, str)
    read = sa.DateTime().dialect_impl(dialect).result_processor(dialect, None)
    theirs = col.process_result_value(read(stored), dialect)
    ours = sql_base._utc_from_sqlite(stored)
    assert ours == theirs == when
    if ours is not None and theirs is not None:
        assert ours.tzinfo is theirs.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    ["2025-05-06T07:08:09.123456", "2025-05-06 07:08:09+02:00", "2025-05-06", "2025-05-06Z"],
)
def test_sqlite_datetimes_of_other_shapes_as_before(value: str) -> None:
    """Shapes SQLAlchemy does not write take the general path (fromisoformat, read as UTC)."""
    try:
        before: Any = datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            sql_base._utc_from_sqlite(value)
        return
    assert sql_base._utc_from_sqlite(value) == before


@pytest.mark.parametrize(
    "value",
    [
        None,
        '{"a": 1}',
        ' {"a": 1}',  # leading whitespace
        '{"a": 1} ',  # trailing whitespace
        "[1, 2.5, null, true]",
        '"text"',
        "12",
        "NaN",
        '{"big": 123456789012345678901234567890}',
        '{"a": 1} {"b": 2}',  # extra data: an error, as json.loads says
        "{not json",
        "",
    ],
)
def test_sqlite_json_as_sqlalchemy_reads_it(value: str | None) -> None:
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    theirs_proc = sa.JSON().dialect_impl(dialect).result_processor(dialect, None)
    ours_proc = sql_base._processor(sa.JSON(), dialect)
    assert theirs_proc is not None and ours_proc is not None
    try:
        theirs: Any = theirs_proc(value)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            ours_proc(value)
        return
    ours = ours_proc(value)
    assert json.dumps(ours) == json.dumps(theirs) and type(ours) is type(theirs)

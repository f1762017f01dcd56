"""Data sources resolved in SQL: every source of one enrolled record in one statement.

``resolve_sources`` turns each data source into a ``SELECT ... ORDER BY <reduce rule> LIMIT 1``
branch (the reduce-to-one happens in the database) and sends them as one ``UNION ALL``, tagged
with the source's position. A resolution therefore costs one connection checkout and one
statement (two when a property-match source needs the enrolled record's values and the caller
did not pass the record), instead of ~11 port calls of one or two statements each.

The branches mirror the single-record calls, so both paths agree (tests/integration/datasource
runs every kind and rule both ways): association rows joined to their records for
``ASSOCIATED`` (the primary-label fallback of default sources is an ``ORDER BY label =
'primary' DESC`` instead of a second query), the search translator's ``eq`` on the typed value
rows for ``PROPERTY_MATCH``/``PROPERTY_VALUE``, and the search's sort keys (ties by record id)
for the reduce rules. Tenant id and every operand are bound parameters.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from crmflow.criteria.values import as_datetime, as_number, as_text
from crmflow.errors import InvalidArgument, NotFound
from crmflow.model.data_sources import DataSource, DataSourceKind
from crmflow.model.default_sources import PRIMARY_LABEL
from crmflow.model.records import Record
from crmflow.records.port import PropertyDefinition, PropertyType, ResolvedSources
from crmflow.records.schema import Schema
from crmflow.records.sources import SORT_FOR, match_value, needs_enrolled
from crmflow.records.sql_base import RECORD_BY_ID, R, check_tenant
from crmflow.records.sql_base import VAL as V
from crmflow.records.sql_links import A
from crmflow.records.sql_search import SearchMixin, _noindex
from crmflow.records.tables import TEXT_INDEX_LEN

log = logging.getLogger("crmflow.records.sql_sources")

ENROLLED = -1  # the branch tag of the enrolled record when it rides in the same statement


# Built statements by shape (kinds, types, labels, properties, reduce rules - never values):
# every operand is a bindparam, so a workflow's sources build their statement once and
# SQLAlchemy's compiled cache finds it by the memoised cache key (building and keying a
# 5-branch select costs more than running it).
_MAX_SHAPES = 1024
_RECORD = RECORD_BY_ID


def _eq_operand(prop: PropertyDefinition, value: Any, path: str) -> tuple[str, Any]:
    """("text", s) / ("num", x) / ("day", midnight): how ``eq`` compares, as in sql_filters."""
    if prop.type == PropertyType.NUMBER:
        n = as_number(value)
        if n is None:
            raise InvalidArgument.field(path, f"{value!r} is not a number")
        return "num", n
    if prop.type in (PropertyType.DATE, PropertyType.DATETIME):
        when = as_datetime(value)
        if when is None:
            raise InvalidArgument.field(
                path, f"{value!r} is not a date (ISO-8601 or epoch milliseconds)"
            )
        if prop.type == PropertyType.DATE:  # a date equals any instant of that day
            return "day", when.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        return "num", when.timestamp()
    return "text", as_text(value)[:TEXT_INDEX_LEN]


class SourcesMixin(SearchMixin):
    _source_stmts: dict[tuple[Any, ...], Any]

    async def resolve_sources(
        self,
        tenant_id: str,
        object_type: str,
        record_id: str,
        sources: Sequence[DataSource],
        *,
        enrolled: Record | None = None,
        include_record: bool = False,
    ) -> ResolvedSources:
        check_tenant(tenant_id)
        out = ResolvedSources(sources={s.source_id: None for s in sources})
        needs = needs_enrolled(sources)
        with_record = enrolled is None and (include_record or needs)
        params: dict[str, Any] = {"t": tenant_id, "ot": object_type, "rid": record_id}
        read_first = with_record and needs
        schemas = await self.schemas(tenant_id, (s.object_type for s in sources))

        def plan(enrolled: Record | None) -> Any | None:
            """The statement for the sources (+ the record unless read first); None: nothing."""
            shapes: list[Any] = [with_record and not read_first]
            positions: list[int] = []
            for i, src in enumerate(sources):
                try:
                    shape = self._branch(schemas[src.object_type], src, i, enrolled, params)
                except (NotFound, InvalidArgument) as exc:
                    # The schema moved under a published revision: this source finds nothing.
                    out.skipped[src.source_id] = str(exc)
                    log.warning("data source %r resolved to nothing: %s", src.source_id, exc)
                    continue
                if shape is not None:
                    shapes.append(shape)
                    positions.append(i)
            return self._statement(tuple(shapes), positions) if shapes[0] or positions else None

        found: list[tuple[int, Record]] = []  # (branch tag, record) per row
        if self.reader is not None:
            # SQLite: both statements (the record, then the sources) in one hop to the reader,
            # Records built from the driver's rows there.
            def work(conn: sqlite3.Connection) -> tuple[Record | None, list[tuple[int, Record]]]:
                rec = enrolled
                if read_first:
                    compiled, raw = self.raw_sync(conn, _RECORD, params)
                    rec = compiled.record(raw[0]) if raw else None
                stmt = plan(rec)
                if stmt is None:
                    return rec, []
                compiled, raw = self.raw_sync(conn, stmt, params)
                tag, record = compiled.index["src"], compiled.record
                return rec, [(r[tag], record(r)) for r in raw]

            enrolled, found = await self.reader.run(work)
        elif self.sqlite:  # in-memory SQLite: through the pool
            if read_first:
                rows = await self.read_rows(_RECORD, params)
                enrolled = self.to_record(rows[0]) if rows else None
            stmt = plan(enrolled)
            if stmt is not None:
                found = [(r.src, self.to_record(r)) for r in await self.read_rows(stmt, params)]
        else:  # PostgreSQL: one connection checkout for both statements
            async with self.pg_reads() as run:
                if read_first:
                    raw = await run(_RECORD, params, raw=True)
                    enrolled = self.compiled(_RECORD).record(raw[0]) if raw else None
                stmt = plan(enrolled)
                if stmt is not None:
                    raw = await run(stmt, params, raw=True)
                    compiled = self.compiled(stmt)
                    tag = compiled.index["src"]
                    found = [(r[tag], compiled.record(r)) for r in raw]
        for src, rec in found:
            if src == ENROLLED:
                enrolled = rec
            else:
                out.sources[sources[src].source_id] = rec
        if include_record:
            out.record = enrolled
        return out

    def _branch(
        self,
        schema: Schema | NotFound,
        src: DataSource,
        i: int,
        enrolled: Record | None,
        params: dict[str, Any],
    ) -> tuple[Any, ...] | None:
        """A source's branch shape, its operands added to ``params`` (None: nothing to look
        for). NotFound / InvalidArgument when its type or property no longer exists."""
        if isinstance(schema, NotFound):
            raise schema
        params[f"ty{i}"] = src.object_type
        if src.kind == DataSourceKind.ASSOCIATED:
            label = ""
            if src.association_label:
                # Primary if any, else any association of the type (stores without labels).
                fallback = src.is_default and src.association_label == PRIMARY_LABEL
                label = "prefer" if fallback else "only"
                params[f"lb{i}"] = src.association_label
            return ("assoc", label, src.reduce)
        value = (
            match_value(src, enrolled) if src.kind == DataSourceKind.PROPERTY_MATCH else src.value
        )
        if value is None:
            return None
        prop = schema.get(src.property, "criteria.filters[0].property")
        how, operand = _eq_operand(prop, value, "criteria.filters[0].value")
        params[f"pr{i}"] = src.property
        params[f"v{i}"] = operand
        return ("eq", how, src.reduce)

    def _statement(self, shapes: tuple[Any, ...], positions: list[int]) -> Any:
        key = (shapes, tuple(positions))
        cache = self.__dict__.setdefault("_source_stmts", {})
        stmt = cache.get(key)
        if stmt is None:
            branches = [
                self._select(shape, i) for shape, i in zip(shapes[1:], positions, strict=True)
            ]
            if shapes[0]:  # the enrolled record rides along (no property-match source)
                branches.insert(
                    0, _RECORD.add_columns(sa.literal(ENROLLED, sa.Integer).label("src"))
                )
            if len(branches) == 1:
                stmt = branches[0]
            else:
                # Each branch keeps its own ORDER BY/LIMIT inside a derived table (a bare
                # compound member may not have them).
                stmt = sa.union_all(*(sa.select(b.subquery()) for b in branches))
            if len(cache) >= _MAX_SHAPES:
                cache.clear()
            cache[key] = stmt
        return stmt

    def _select(self, shape: tuple[Any, ...], i: int) -> Any:
        kind, mode, rule = shape
        sort = SORT_FOR[rule]
        col = R.c.created_at if sort.lstrip("-") == "createdate" else R.c.updated_at
        rid = R.c.record_id
        if self.sqlite:  # look the few candidates up and sort them (see SearchMixin._walk)
            col, rid = _noindex(col), _noindex(rid)
        desc = sort.startswith("-")
        order = [
            sa.nulls_last(col.desc() if desc else col.asc()),
            rid.desc() if desc else rid.asc(),
        ]
        tag = sa.literal(i, sa.Integer).label("src")
        if kind == "assoc":
            where = [
                A.c.tenant_id == sa.bindparam("t"),
                A.c.from_type == sa.bindparam("ot"),
                A.c.from_id == sa.bindparam("rid"),
                A.c.to_type == sa.bindparam(f"ty{i}"),
            ]
            first: list[Any] = []
            if mode == "only":
                where.append(A.c.label == sa.bindparam(f"lb{i}"))
            elif mode == "prefer":
                first = [sa.case((A.c.label == sa.bindparam(f"lb{i}"), 0), else_=1)]
            joined = A.join(
                R,
                sa.and_(
                    R.c.tenant_id == A.c.tenant_id,
                    R.c.object_type == A.c.to_type,
                    R.c.record_id == A.c.to_id,
                ),
            )
            return (
                sa.select(R, tag)
                .select_from(joined)
                .where(*where)
                .order_by(*first, *order)
                .limit(1)
            )
        v = V.alias()
        value: Any = sa.bindparam(f"v{i}")
        cond = (
            v.c.value_text == value
            if mode == "text"
            else v.c.value_num == value
            if mode == "num"
            else v.c.value_num.between(value, value + 86399.999)
        )
        ids = sa.select(v.c.record_id).where(
            v.c.tenant_id == sa.bindparam("t"),
            v.c.object_type == sa.bindparam(f"ty{i}"),
            v.c.property == sa.bindparam(f"pr{i}"),
            cond,
        )
        return (
            sa.select(R, tag)
            .where(
                R.c.tenant_id == sa.bindparam("t"),
                R.c.object_type == sa.bindparam(f"ty{i}"),
                R.c.record_id.in_(ids),
            )
            .order_by(*order)
            .limit(1)
        )

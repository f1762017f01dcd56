"""Data sources resolved in SQL: every source of one enrolled record in one statement.

``resolve_sources`` turns each data source into a ``SELECT ... ORDER BY <reduce rule> LIMIT 1``
branch (the reduce-to-one happens in the database) and sends them as one ``UNION ALL``, tagged
with the source's position. A resolution therefore costs one connection checkout and one
statement (two when a property-match source needs the enrolled record's values and the caller
did not pass the record), instead of ~11 port calls of one or two statements each.

The branches use the same pieces as the single-record calls, so both paths agree: association
rows joined to their records for ``ASSOCIATED`` (the primary-label fallback of default sources
is an ``ORDER BY label = 'primary' DESC`` instead of a second query), the search translator's
``eq`` filter for ``PROPERTY_MATCH``/``PROPERTY_VALUE``, and the search's sort keys (ties by
record id) for the reduce rules. Tenant id and every operand are bound parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from crmflow.errors import InvalidArgument, NotFound
from crmflow.model.criteria import FilterGroup, PropertyFilter
from crmflow.model.data_sources import DataSource, DataSourceKind
from crmflow.model.default_sources import PRIMARY_LABEL
from crmflow.model.records import Record
from crmflow.records.port import ResolvedSources
from crmflow.records.sources import SORT_FOR, match_value, needs_enrolled
from crmflow.records.sql_base import R, check_tenant
from crmflow.records.sql_links import A
from crmflow.records.sql_search import SearchMixin

log = logging.getLogger("crmflow.records.sql_sources")

ENROLLED = -1  # the branch tag of the enrolled record when it rides in the same statement


class SourcesMixin(SearchMixin):
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
        with_record = enrolled is None and (include_record or needs_enrolled(sources))
        async with self.read() as conn:
            if with_record and needs_enrolled(sources):
                # The match values come from the record: read it first (statement 1 of 2).
                row = (await self.fetch(conn, tenant_id, object_type, [record_id])).get(record_id)
                enrolled = self.to_record(row) if row is not None else None
                with_record = False
            branches: list[Any] = []
            if with_record:
                branches.append(
                    sa.select(sa.literal(ENROLLED, sa.Integer).label("src"), *R.c).where(
                        R.c.tenant_id == tenant_id,
                        R.c.object_type == object_type,
                        R.c.record_id == record_id,
                    )
                )
            for i, src in enumerate(sources):
                try:
                    q = await self._branch(
                        conn, tenant_id, object_type, record_id, src, i, enrolled
                    )
                except (NotFound, InvalidArgument) as exc:
                    # The schema moved under a published revision: this source finds nothing.
                    out.skipped[src.source_id] = str(exc)
                    log.warning("data source %r resolved to nothing: %s", src.source_id, exc)
                    continue
                if q is not None:
                    branches.append(q)
            rows: list[Any] = []
            if len(branches) == 1:
                rows = list((await conn.execute(branches[0])).all())
            elif branches:
                # Each branch keeps its own ORDER BY/LIMIT inside a derived table (a bare
                # compound member may not have them).
                union = sa.union_all(*(sa.select(b.subquery()) for b in branches))
                rows = list((await conn.execute(union)).all())
        for row in rows:
            rec = self.to_record(row)
            if row.src == ENROLLED:
                enrolled = rec
            else:
                out.sources[sources[row.src].source_id] = rec
        if include_record:
            out.record = enrolled
        return out

    async def _branch(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        object_type: str,
        record_id: str,
        src: DataSource,
        position: int,
        enrolled: Record | None,
    ) -> Any | None:
        """The one-row SELECT for a source (None: nothing to look for)."""
        schema = await self.schema(conn, tenant_id, src.object_type)
        # SQLite: look the few candidates up and sort them (see SearchMixin._walk); a source
        # meant to pick "the" record matches few.
        order = self._order(schema, SORT_FOR[src.reduce], noindex=self.sqlite)
        tag = sa.literal(position, sa.Integer).label("src")
        if src.kind == DataSourceKind.ASSOCIATED:
            where = [
                A.c.tenant_id == tenant_id,
                A.c.from_type == object_type,
                A.c.from_id == record_id,
                A.c.to_type == src.object_type,
            ]
            first: list[Any] = []
            if src.association_label:
                if src.is_default and src.association_label == PRIMARY_LABEL:
                    # Primary if any, else any association of the type (stores without labels).
                    first = [sa.case((A.c.label == src.association_label, 0), else_=1)]
                else:
                    where.append(A.c.label == src.association_label)
            joined = A.join(
                R,
                sa.and_(
                    R.c.tenant_id == A.c.tenant_id,
                    R.c.object_type == A.c.to_type,
                    R.c.record_id == A.c.to_id,
                ),
            )
            return (
                sa.select(tag, *R.c)
                .select_from(joined)
                .where(*where)
                .order_by(*first, *order)
                .limit(1)
            )
        value = (
            match_value(src, enrolled) if src.kind == DataSourceKind.PROPERTY_MATCH else src.value
        )
        if value is None:
            return None
        group = FilterGroup(
            filters=[PropertyFilter(property=src.property, operator="eq", value=value)]
        )
        matches = await self._where(conn, tenant_id, src.object_type, group)
        return (
            sa.select(tag, *R.c)
            .where(R.c.tenant_id == tenant_id, R.c.object_type == src.object_type, matches)
            .order_by(*order)
            .limit(1)
        )

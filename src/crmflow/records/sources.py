"""Resolving one data source to one record through the RecordStore port.

Three kinds (``DataSourceKind``): records associated with the enrolled record (optionally by
association label), records whose property equals a property of the enrolled record (optionally
transformed, e.g. a contact's email -> its domain), and records whose property equals a given
value. Every kind is then reduced to one record by its ``ReduceRule``.

No match is not an error: the source resolves to ``None`` and its tokens fall back to their
defaults (or the explicit unknown value).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from crmflow.errors import InvalidArgument, NotFound
from crmflow.model.criteria import FilterGroup, PropertyFilter
from crmflow.model.data_sources import DataSource, DataSourceKind, ReduceRule
from crmflow.model.default_sources import PRIMARY_LABEL
from crmflow.model.records import Record
from crmflow.records.port import RecordStore, ResolvedSources

log = logging.getLogger("crmflow.records.sources")

# A property match or value search reads at most this many candidates before reducing; a
# source meant to pick "the" record should not match more (the reduce rule then sees a prefix).
MAX_CANDIDATES = 1_000
PAGE = 200
# Default sources name the primary association (PRIMARY_LABEL); stores that do not label
# associations fall back to every association of the type (then the reduce rule picks one).

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def email_domain(value: Any) -> str | None:
    if not isinstance(value, str) or "@" not in value:
        return None
    domain = value.rsplit("@", 1)[1].strip().lower().rstrip(".")
    return domain or None


TRANSFORMS = {"email_domain": email_domain}


def _created(r: Record) -> datetime:
    return r.created_at or r.updated_at or _EPOCH


def _updated(r: Record) -> datetime:
    return r.updated_at or r.created_at or _EPOCH


def reduce(records: Sequence[Record], rule: ReduceRule) -> Record | None:
    """One record by the rule. Ties go the way the store's sorted search breaks them (record
    id descending for the most recent, ascending for the first), so both paths agree."""
    if not records:
        return None
    if rule == ReduceRule.FIRST_CREATED:
        return min(records, key=lambda r: (_created(r), r.record_id))
    stamp = _updated if rule == ReduceRule.MOST_RECENTLY_UPDATED else _created
    return max(records, key=lambda r: (stamp(r), r.record_id))


# The store's sort keys (HubSpot's names) that put the reduce rule's pick first.
SORT_FOR = {
    ReduceRule.MOST_RECENTLY_UPDATED: "-lastmodifieddate",
    ReduceRule.MOST_RECENTLY_CREATED: "-createdate",
    ReduceRule.FIRST_CREATED: "createdate",
}


async def _associated(
    store: RecordStore, tenant_id: str, src: DataSource, object_type: str, record_id: str
) -> list[Record]:
    assocs = await store.list_associations(
        tenant_id, object_type, record_id, src.object_type, label=src.association_label
    )
    if not assocs and src.is_default and src.association_label == PRIMARY_LABEL:
        assocs = await store.list_associations(tenant_id, object_type, record_id, src.object_type)
    ids = list(dict.fromkeys(a.to_record_id for a in assocs))
    if not ids:
        return []
    return await store.batch_get(tenant_id, src.object_type, ids)


async def _matching(
    store: RecordStore, tenant_id: str, src: DataSource, value: Any
) -> list[Record]:
    group = FilterGroup(filters=[PropertyFilter(property=src.property, operator="eq", value=value)])
    try:
        # One sorted row: the store picks the record the reduce rule would.
        page = await store.search(
            tenant_id, src.object_type, group, limit=1, sort=SORT_FOR[src.reduce]
        )
        return page.records
    except InvalidArgument as exc:
        if not any(v.field == "sort" for v in exc.violations):
            raise
    # A CRM without these sort keys: read the candidates and reduce here.
    out: list[Record] = []
    cursor = ""
    while len(out) < MAX_CANDIDATES:
        page = await store.search(tenant_id, src.object_type, group, limit=PAGE, cursor=cursor)
        out.extend(page.records)
        if not page.next_cursor or not page.records:
            break
        cursor = page.next_cursor
    return out


def match_value(src: DataSource, enrolled: Record | None) -> Any:
    """The value a PROPERTY_MATCH source searches for (None = nothing to match)."""
    if enrolled is None:
        return None
    value = enrolled.properties.get(src.enrolled_property)
    if src.transform:
        value = TRANSFORMS[src.transform](value)
    if value is None or value == "" or isinstance(value, list | dict):
        return None
    return value


async def candidates(
    store: RecordStore,
    tenant_id: str,
    src: DataSource,
    object_type: str,
    record_id: str,
    enrolled: Record | None,
) -> list[Record]:
    if src.kind == DataSourceKind.ASSOCIATED:
        return await _associated(store, tenant_id, src, object_type, record_id)
    if src.kind == DataSourceKind.PROPERTY_MATCH:
        value = match_value(src, enrolled)
        return [] if value is None else await _matching(store, tenant_id, src, value)
    return await _matching(store, tenant_id, src, src.value)


async def resolve_source(
    store: RecordStore,
    tenant_id: str,
    src: DataSource,
    object_type: str,
    record_id: str,
    enrolled: Record | None,
) -> Record | None:
    found = await candidates(store, tenant_id, src, object_type, record_id, enrolled)
    return reduce(found, src.reduce)


def needs_enrolled(sources: Sequence[DataSource]) -> bool:
    """Whether resolving these sources reads the enrolled record's values."""
    return any(s.kind == DataSourceKind.PROPERTY_MATCH for s in sources)


async def resolve_each(
    store: RecordStore,
    tenant_id: str,
    object_type: str,
    record_id: str,
    sources: Sequence[DataSource],
    *,
    enrolled: Record | None = None,
    include_record: bool = False,
    concurrent: bool = False,
) -> ResolvedSources:
    """``RecordStore.resolve_sources`` from the port's single-record calls, source by source.

    The default for stores without a batched read. ``concurrent`` overlaps the sources' calls
    (worth it against a remote CRM; against an in-process, mostly cached store plain awaits
    are cheaper).
    """
    out = ResolvedSources()
    if enrolled is None and (include_record or needs_enrolled(sources)):
        try:
            enrolled = await store.get(tenant_id, object_type, record_id)
        except NotFound:
            enrolled = None
    if include_record:
        out.record = enrolled

    async def one(src: DataSource) -> Record | None:
        try:
            return await resolve_source(store, tenant_id, src, object_type, record_id, enrolled)
        except NotFound as exc:
            if exc.resource_type == "record":  # the enrolled record is gone: nothing to read
                return None
            out.skipped[src.source_id] = str(exc)
            log.warning("data source %r resolved to nothing: %s", src.source_id, exc)
            return None
        except InvalidArgument as exc:
            if any(v.field == "tenant_id" for v in exc.violations):
                raise
            # The schema moved under a published revision (type or property deleted) or the
            # enrolled record is gone: missing data, not a failed step.
            out.skipped[src.source_id] = str(exc)
            log.warning("data source %r resolved to nothing: %s", src.source_id, exc)
            return None

    if concurrent and len(sources) > 1:
        found = list(await asyncio.gather(*(one(s) for s in sources)))
    else:
        found = [await one(s) for s in sources]
    out.sources = {s.source_id: r for s, r in zip(sources, found, strict=True)}
    return out


def searched_types(sources: Sequence[DataSource]) -> set[str]:
    """Object types whose any change may change these sources (searched, not associated)."""
    return {s.object_type for s in sources if s.kind != DataSourceKind.ASSOCIATED}

"""A tenant-scoped read-through cache of records, association lists and equality searches.

Only for a process that sees every write to the store: in embedded mode the datasource-resolver
owns the SQL store, every other service writes through its CrmService (whose store is wrapped by
``InvalidatingStore``), and the outbox's change events cover anything else. There, a record read
by one enrollment step stays valid for the next step until a change drops it, which is what makes
a workflow's later actions (and other workflows on the same record) cheap. In grpc mode (a
platform's CRM we cannot observe) it is not used; only the short-lived step cache is.

Every key starts with the tenant id. A read that raced with a write is not stored: each
(tenant, object type) has a generation bumped by invalidation, checked before storing.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from crmflow.model.criteria import FilterGroup
from crmflow.model.data_sources import DataSource, DataSourceKind, ReduceRule
from crmflow.model.records import Record
from crmflow.records.port import Association, RecordStore, ResolvedSources, SearchPage
from crmflow.records.sources import needs_enrolled
from datasource_resolver.delegating_store import DelegatingStore

# Searches whose result depends only on stored data (not on the clock) may be cached.
_CACHEABLE_OPERATORS = frozenset({"eq", "in", "neq", "not_in", "is_known", "is_unknown"})


def _cacheable(group: FilterGroup | None) -> bool:
    if group is None:
        return True
    return all(
        f.operator in _CACHEABLE_OPERATORS and f.association is None for f in group.filters
    ) and all(_cacheable(g) for g in group.groups)


class _Lru:
    def __init__(self, max_entries: int, ttl: float) -> None:
        self.max_entries, self.ttl = max_entries, ttl
        self.items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        item = self.items.get(key)
        if item is None:
            return None
        if item[0] < time.monotonic():
            del self.items[key]
            return None
        self.items.move_to_end(key)
        return item[1]

    def put(self, key: Hashable, value: Any) -> None:
        self.items[key] = (time.monotonic() + self.ttl, value)
        self.items.move_to_end(key)
        while len(self.items) > self.max_entries:
            self.items.popitem(last=False)

    def pop(self, key: Hashable) -> None:
        self.items.pop(key, None)


class RecordCache:
    def __init__(self, *, ttl: float = 300.0, max_entries: int = 100_000) -> None:
        self.records = _Lru(max_entries, ttl)
        self.assocs = _Lru(max_entries, ttl)
        self.searches = _Lru(max_entries // 4 or 1, ttl)
        # Resolved data sources: key -> (record or None, the source type's generation when it
        # depends on every record of that type, else None).
        self.sources = _Lru(max_entries, ttl)
        # Which association lists / searches / sources to drop when a record / a type changes.
        self._assoc_keys: dict[tuple[str, str, str], set[Hashable]] = {}
        self._source_keys: dict[tuple[str, str, str], set[Hashable]] = {}
        self._search_keys: dict[tuple[str, str], set[Hashable]] = {}
        self._gen: dict[tuple[str, str], int] = {}
        self.hits = 0
        self.misses = 0

    def generation(self, tenant_id: str, object_type: str) -> int:
        return self._gen.get((tenant_id, object_type), 0)

    def invalidate(self, tenant_id: str, object_type: str, record_ids: Iterable[str]) -> None:
        self._gen[(tenant_id, object_type)] = self.generation(tenant_id, object_type) + 1
        for rid in record_ids:
            self.records.pop((tenant_id, object_type, rid))
            for k in self._assoc_keys.pop((tenant_id, object_type, rid), ()):
                self.assocs.pop(k)
            for k in self._source_keys.pop((tenant_id, object_type, rid), ()):
                self.sources.pop(k)
        for k in self._search_keys.pop((tenant_id, object_type), ()):
            self.searches.pop(k)

    def clear(self) -> None:
        for lru in (self.records, self.assocs, self.searches, self.sources):
            lru.items.clear()
        self._assoc_keys.clear()
        self._source_keys.clear()
        self._search_keys.clear()

    # Used by CachedReads -------------------------------------------------------------------
    def put_assocs(self, key: tuple[Any, ...], value: list[Association], gen: int) -> None:
        tenant_id, object_type, record_id = key[0], key[1], key[2]
        if gen != self.generation(tenant_id, object_type):
            return
        self.assocs.put(key, value)
        self._assoc_keys.setdefault((tenant_id, object_type, record_id), set()).add(key)

    def put_search(self, key: tuple[Any, ...], page: SearchPage, gen: int) -> None:
        tenant_id, object_type = key[0], key[1]
        if gen != self.generation(tenant_id, object_type):
            return
        self.searches.put(key, page)
        self._search_keys.setdefault((tenant_id, object_type), set()).add(key)

    def get_source(self, key: tuple[Any, ...], src: DataSource) -> tuple[bool, Record | None]:
        """(hit, record) for a resolved source."""
        hit = self.sources.get(key)
        if hit is None:
            return False, None
        rec, type_gen = hit
        if type_gen is not None and type_gen != self.generation(key[0], src.object_type):
            return False, None
        return True, rec

    def put_source(
        self, key: tuple[Any, ...], src: DataSource, rec: Record | None, gens: dict[str, int]
    ) -> None:
        """Store a resolved source unless a change raced the read (``gens``: before it).

        Dropped when the enrolled record changes (its associations are part of it) or the picked
        record does. Searched sources, and "most recently updated" associated ones (any other
        candidate's update can change the pick), also depend on every record of their type.
        """
        tenant_id, object_type, record_id = key[0], key[1], key[2]
        if any(gen != self.generation(tenant_id, t) for t, gen in gens.items()):
            return
        whole_type = (
            src.kind != DataSourceKind.ASSOCIATED or src.reduce == ReduceRule.MOST_RECENTLY_UPDATED
        )
        self.sources.put(key, (rec, gens[src.object_type] if whole_type else None))
        self._source_keys.setdefault((tenant_id, object_type, record_id), set()).add(key)
        if rec is not None:
            self._source_keys.setdefault((tenant_id, rec.object_type, rec.record_id), set()).add(
                key
            )

    def put_records(self, tenant_id: str, records: Iterable[Record], gens: dict[str, int]) -> None:
        for r in records:
            if gens.get(r.object_type) == self.generation(tenant_id, r.object_type):
                self.records.put((tenant_id, r.object_type, r.record_id), r)


class CachedReads(DelegatingStore):
    """``inner`` with get / batch_get / list_associations / equality searches and resolved data
    sources cached."""

    def __init__(self, inner: RecordStore, cache: RecordCache) -> None:
        super().__init__(inner)
        self.cache = cache

    async def get(self, tenant_id: str, object_type: str, record_id: str) -> Record:
        rec = self.cache.records.get((tenant_id, object_type, record_id))
        if rec is not None:
            self.cache.hits += 1
            return rec  # type: ignore[no-any-return]
        self.cache.misses += 1
        gen = self.cache.generation(tenant_id, object_type)
        rec = await self.inner.get(tenant_id, object_type, record_id)
        self.cache.put_records(tenant_id, [rec], {object_type: gen})
        return rec  # type: ignore[no-any-return]

    async def batch_get(
        self, tenant_id: str, object_type: str, record_ids: Sequence[str]
    ) -> list[Record]:
        found: dict[str, Record] = {}
        todo: list[str] = []
        for rid in dict.fromkeys(record_ids):
            rec = self.cache.records.get((tenant_id, object_type, rid))
            if rec is None:
                todo.append(rid)
            else:
                found[rid] = rec
        if todo:
            self.cache.misses += 1
            gen = self.cache.generation(tenant_id, object_type)
            fetched = await self.inner.batch_get(tenant_id, object_type, todo)
            self.cache.put_records(tenant_id, fetched, {object_type: gen})
            found.update({r.record_id: r for r in fetched})
        else:
            self.cache.hits += 1
        return [found[rid] for rid in dict.fromkeys(record_ids) if rid in found]

    async def list_associations(
        self,
        tenant_id: str,
        object_type: str,
        record_id: str,
        to_object_type: str,
        *,
        label: str = "",
        limit: int | None = None,
        after: str = "",
    ) -> list[Association]:
        key = (tenant_id, object_type, record_id, to_object_type, label, limit, after)
        hit = self.cache.assocs.get(key)
        if hit is not None:
            self.cache.hits += 1
            return list(hit)
        self.cache.misses += 1
        gen = self.cache.generation(tenant_id, object_type)
        out = await self.inner.list_associations(
            tenant_id, object_type, record_id, to_object_type, label=label, limit=limit, after=after
        )
        self.cache.put_assocs(key, list(out), gen)
        return out

    async def search(
        self,
        tenant_id: str,
        object_type: str,
        criteria: FilterGroup | None = None,
        *,
        limit: int = 100,
        cursor: str = "",
        sort: str = "",
    ) -> SearchPage:
        if not _cacheable(criteria):
            return await self.inner.search(
                tenant_id, object_type, criteria, limit=limit, cursor=cursor, sort=sort
            )
        crit = criteria.model_dump_json() if criteria else ""
        key = (tenant_id, object_type, crit, limit, cursor, sort)
        hit = self.cache.searches.get(key)
        if hit is not None:
            self.cache.hits += 1
            return hit  # type: ignore[no-any-return]
        self.cache.misses += 1
        gen = self.cache.generation(tenant_id, object_type)
        page = await self.inner.search(
            tenant_id, object_type, criteria, limit=limit, cursor=cursor, sort=sort
        )
        self.cache.put_search(key, page, gen)
        self.cache.put_records(tenant_id, page.records, {object_type: gen})
        return page

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
        """Cached sources from the cache; the rest in ONE call to the inner store (the SQL
        store's single statement), whose answers are cached for the next steps."""
        cache = self.cache
        out = ResolvedSources()
        keys = {
            s.source_id: (tenant_id, object_type, record_id, s.model_dump_json()) for s in sources
        }
        todo: list[DataSource] = []
        for src in sources:
            hit, rec = cache.get_source(keys[src.source_id], src)
            if hit:
                out.sources[src.source_id] = rec
            else:
                todo.append(src)
        if enrolled is None and (include_record or needs_enrolled(todo)):
            enrolled = cache.records.get((tenant_id, object_type, record_id))
        read_record = enrolled is None and (include_record or needs_enrolled(todo))
        if not todo and not read_record:
            cache.hits += 1
            out.record = enrolled if include_record else None
            return out
        cache.misses += 1
        types = {object_type, *(s.object_type for s in todo)}
        gens = {t: cache.generation(tenant_id, t) for t in types}
        got = await self.inner.resolve_sources(
            tenant_id, object_type, record_id, todo, enrolled=enrolled, include_record=read_record
        )
        if read_record:
            enrolled = got.record
            if enrolled is not None:
                cache.put_records(tenant_id, [enrolled], gens)
        out.skipped = dict(got.skipped)
        for src in todo:
            rec = got.sources.get(src.source_id)
            out.sources[src.source_id] = rec
            if src.source_id not in got.skipped:
                cache.put_source(keys[src.source_id], src, rec, gens)
                if rec is not None:
                    cache.put_records(tenant_id, [rec], gens)
        out.sources = {s.source_id: out.sources.get(s.source_id) for s in sources}
        out.record = enrolled if include_record else None
        return out

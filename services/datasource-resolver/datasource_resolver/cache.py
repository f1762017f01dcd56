"""Per-enrollment-step cache of resolved data.

One entry per (tenant, workflow, revision, enrolled record, action): the enrolled record's
properties and each data source's reduced record. The tenant is part of every key, so one
tenant's data never answers another's request. Entries depend on records and (for searched
sources) on whole object types; a change to any of those drops the entry, whether it arrives
through the store wrapper (``invalidating``: writes made in this process, immediate) or through
change events from the outbox (writes made elsewhere). A short TTL bounds staleness for a CRM
this process cannot observe (grpc mode).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from crmflow.model.records import ChangeEvent, Record
from crmflow.records.port import Association, RecordStore
from datasource_resolver.invalidating_store import InvalidatingStore
from datasource_resolver.record_cache import RecordCache

StepKey = tuple[str, str, int, str, str, str]  # tenant, workflow, revision, type, record, action
Dep = tuple[str, str, str]  # tenant, object_type, record_id ("*" = any record of the type)

ANY = "*"


@dataclass
class StepData:
    """What one step resolved: the enrolled record and each source's record (None = no match)."""

    record: Record | None
    sources: dict[str, Record | None] = field(default_factory=dict)
    deps: set[Dep] = field(default_factory=set)


class StepCache:
    def __init__(
        self,
        *,
        ttl: float = 60.0,
        max_entries: int = 10_000,
        records: RecordCache | None = None,
    ) -> None:
        self.ttl = ttl
        # The cross-step record cache (embedded mode only), invalidated together with this one.
        self.records = records
        self.max_entries = max_entries
        self._entries: OrderedDict[StepKey, tuple[float, StepData]] = OrderedDict()
        self._by_dep: dict[Dep, set[StepKey]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: StepKey) -> StepData | None:
        item = self._entries.get(key)
        if item is None or item[0] < time.monotonic():
            if item is not None:
                self._drop(key)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return item[1]

    def put(self, key: StepKey, data: StepData) -> None:
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (time.monotonic() + self.ttl, data)
        for dep in data.deps:
            self._by_dep.setdefault(dep, set()).add(key)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: StepKey) -> None:
        item = self._entries.pop(key, None)
        if item is None:
            return
        for dep in item[1].deps:
            keys = self._by_dep.get(dep)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_dep[dep]

    def invalidate(self, tenant_id: str, object_type: str, record_ids: Iterable[str]) -> int:
        """Drop entries that read these records, or searched their object type."""
        ids = list(record_ids)
        if self.records is not None:
            self.records.invalidate(tenant_id, object_type, ids)
        keys: set[StepKey] = set(self._by_dep.get((tenant_id, object_type, ANY), ()))
        for rid in ids:
            keys |= self._by_dep.get((tenant_id, object_type, rid), set())
        for k in keys:
            self._drop(k)
        return len(keys)

    def invalidate_association(self, a: Association, tenant_id: str) -> None:
        self.invalidate(tenant_id, a.from_object_type, [a.from_record_id])
        self.invalidate(tenant_id, a.to_object_type, [a.to_record_id])

    def clear(self) -> None:
        self._entries.clear()
        self._by_dep.clear()
        if self.records is not None:
            self.records.clear()

    def on_change_events(self, events: Sequence[ChangeEvent]) -> None:
        for ev in events:
            self.invalidate(ev.tenant_id, ev.object_type, [ev.record_id])
            if ev.associated_object_type:
                self.invalidate(ev.tenant_id, ev.associated_object_type, [ev.associated_record_id])

    def invalidating(self, store: RecordStore) -> RecordStore:
        """``store`` with every write dropping the cache entries it makes stale."""
        return InvalidatingStore(store, self)


def deps_of(tenant_id: str, records: Iterable[Record | None], searched: Iterable[str]) -> set[Dep]:
    out: set[Dep] = {(tenant_id, t, ANY) for t in searched}
    for r in records:
        if r is not None:
            out.add((tenant_id, r.object_type, r.record_id))
    return out

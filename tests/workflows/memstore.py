"""An in-memory RecordStore for workflow tests whose subject is the executor, not the CRM.

Keeps the port's contract that matters here: idempotency keys on writes (a replayed update with
the same key is not applied twice), change counting (tests assert no duplicate side effects).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from crmflow.errors import NotFound
from crmflow.model.criteria import FilterGroup
from crmflow.model.records import ChangeEvent, Record
from crmflow.records.port import (
    Association,
    ObjectTypeDefinition,
    Owner,
    PropertyDefinition,
    PropertyHistoryEntry,
    RecordStore,
    SearchPage,
    StaticList,
)


class MemoryStore(RecordStore):
    def __init__(self) -> None:
        self.records: dict[tuple[str, str, str], Record] = {}
        self.assocs: list[tuple[str, Association]] = []
        self.lists: dict[str, StaticList] = {}
        self.members: dict[str, set[str]] = {}
        self.owners: dict[str, list[Owner]] = {}
        self.subscriptions: dict[tuple[str, str], str] = {}
        self.events: list[ChangeEvent] = []
        self.keys: dict[str, Any] = {}
        self.writes = 0
        self._ids = itertools.count(1000)

    def put(self, tenant_id: str, object_type: str, record_id: str, **props: Any) -> Record:
        rec = Record(
            tenant_id=tenant_id,
            object_type=object_type,
            record_id=record_id,
            properties=dict(props),
            created_at=datetime.now(UTC),
        )
        self.records[(tenant_id, object_type, record_id)] = rec
        return rec

    async def list_object_types(self, tenant_id: str) -> list[ObjectTypeDefinition]:
        return [
            ObjectTypeDefinition(name=t) for t in ("contact", "company", "deal", "task", "note")
        ]

    async def list_properties(self, tenant_id: str, object_type: str) -> list[PropertyDefinition]:
        return []

    async def get(self, tenant_id: str, object_type: str, record_id: str) -> Record:
        try:
            return self.records[(tenant_id, object_type, record_id)].model_copy(deep=True)
        except KeyError:
            raise NotFound(object_type, record_id) from None

    async def batch_get(
        self, tenant_id: str, object_type: str, record_ids: Sequence[str]
    ) -> list[Record]:
        return [
            self.records[(tenant_id, object_type, r)]
            for r in record_ids
            if (tenant_id, object_type, r) in self.records
        ]

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
        recs = [r for (t, o, _), r in self.records.items() if t == tenant_id and o == object_type]
        return SearchPage(records=recs[:limit], total=len(recs))

    async def count(
        self, tenant_id: str, object_type: str, criteria: FilterGroup | None = None
    ) -> int:
        return (await self.search(tenant_id, object_type, criteria)).total

    async def create(
        self,
        tenant_id: str,
        object_type: str,
        properties: dict[str, Any],
        *,
        record_id: str = "",
        idempotency_key: str = "",
    ) -> Record:
        if idempotency_key and idempotency_key in self.keys:
            return self.keys[idempotency_key]  # type: ignore[no-any-return]
        self.writes += 1
        rec = self.put(tenant_id, object_type, record_id or str(next(self._ids)), **properties)
        if idempotency_key:
            self.keys[idempotency_key] = rec
        return rec

    async def update(
        self,
        tenant_id: str,
        object_type: str,
        record_id: str,
        properties: dict[str, Any],
        *,
        idempotency_key: str = "",
    ) -> Record:
        rec = self.records.get((tenant_id, object_type, record_id))
        if rec is None:
            raise NotFound(object_type, record_id)
        if idempotency_key and idempotency_key in self.keys:
            return rec
        self.writes += 1
        for k, v in properties.items():
            if v is None:
                rec.properties.pop(k, None)
            else:
                rec.properties[k] = v
        if idempotency_key:
            self.keys[idempotency_key] = True
        return rec

    async def delete(self, tenant_id: str, object_type: str, record_id: str) -> None:
        self.records.pop((tenant_id, object_type, record_id), None)

    async def property_history(
        self, tenant_id: str, object_type: str, record_id: str, property: str
    ) -> list[PropertyHistoryEntry]:
        return []

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
        found = [
            a
            for t, a in self.assocs
            if t == tenant_id
            and a.from_object_type == object_type
            and a.from_record_id == record_id
            and a.to_object_type == to_object_type
            and (not label or a.label == label)
        ]
        if limit is None and not after:
            return found
        found = sorted(
            (a for a in found if a.to_record_id > after), key=lambda a: (a.to_record_id, a.label)
        )
        keep = sorted({a.to_record_id for a in found})[:limit]
        return [a for a in found if a.to_record_id in keep]

    async def associate(self, tenant_id: str, association: Association) -> None:
        if (tenant_id, association) not in self.assocs:
            self.writes += 1
            self.assocs.append((tenant_id, association))

    async def unassociate(self, tenant_id: str, association: Association) -> None:
        self.assocs = [
            (t, a)
            for t, a in self.assocs
            if not (
                t == tenant_id
                and a.model_copy(update={"label": association.label}) == association
                and (not association.label or a.label == association.label)
            )
        ]

    async def create_list(self, tenant_id: str, name: str, object_type: str) -> StaticList:
        lst = StaticList(list_id=f"list-{next(self._ids)}", name=name, object_type=object_type)
        self.lists[lst.list_id] = lst
        self.members[lst.list_id] = set()
        return lst

    async def add_to_list(self, tenant_id: str, list_id: str, record_ids: Sequence[str]) -> None:
        if list_id not in self.members:
            raise NotFound("list", list_id)
        self.members[list_id].update(record_ids)

    async def remove_from_list(
        self, tenant_id: str, list_id: str, record_ids: Sequence[str]
    ) -> None:
        if list_id not in self.members:
            raise NotFound("list", list_id)
        self.members[list_id].difference_update(record_ids)

    async def list_members(self, tenant_id: str, list_id: str) -> list[str]:
        return sorted(self.members.get(list_id, set()))

    async def is_member(self, tenant_id: str, list_id: str, record_id: str) -> bool:
        return record_id in self.members.get(list_id, set())

    async def list_owners(self, tenant_id: str) -> list[Owner]:
        return list(self.owners.get(tenant_id, []))

    async def get_subscription_status(self, tenant_id: str, contact_id: str) -> str:
        return self.subscriptions.get((tenant_id, contact_id), "subscribed")

    async def record_event(self, tenant_id: str, event: ChangeEvent) -> None:
        self.events.append(event)

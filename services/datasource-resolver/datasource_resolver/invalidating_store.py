"""A RecordStore decorator that tells the step cache about every write made through it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from datasource_resolver.cache import StepCache


class InvalidatingStore(RecordStore):
    def __init__(self, inner: RecordStore, cache: StepCache) -> None:
        self.inner = inner
        self._cache = cache

    def __getattr__(self, name: str) -> Any:
        # Adapter-specific extras (engine, close, ...) stay reachable.
        return getattr(self.inner, name)

    # Reads -------------------------------------------------------------------------------
    async def list_object_types(self, tenant_id: str) -> list[ObjectTypeDefinition]:
        return await self.inner.list_object_types(tenant_id)

    async def list_properties(self, tenant_id: str, object_type: str) -> list[PropertyDefinition]:
        return await self.inner.list_properties(tenant_id, object_type)

    async def get(self, tenant_id: str, object_type: str, record_id: str) -> Record:
        return await self.inner.get(tenant_id, object_type, record_id)

    async def batch_get(
        self, tenant_id: str, object_type: str, record_ids: Sequence[str]
    ) -> list[Record]:
        return await self.inner.batch_get(tenant_id, object_type, record_ids)

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
        return await self.inner.search(
            tenant_id, object_type, criteria, limit=limit, cursor=cursor, sort=sort
        )

    async def count(
        self, tenant_id: str, object_type: str, criteria: FilterGroup | None = None
    ) -> int:
        return await self.inner.count(tenant_id, object_type, criteria)

    async def property_history(
        self, tenant_id: str, object_type: str, record_id: str, property: str
    ) -> list[PropertyHistoryEntry]:
        return await self.inner.property_history(tenant_id, object_type, record_id, property)

    async def list_associations(
        self,
        tenant_id: str,
        object_type: str,
        record_id: str,
        to_object_type: str,
        *,
        label: str = "",
    ) -> list[Association]:
        return await self.inner.list_associations(
            tenant_id, object_type, record_id, to_object_type, label=label
        )

    async def list_members(self, tenant_id: str, list_id: str) -> list[str]:
        return await self.inner.list_members(tenant_id, list_id)

    async def is_member(self, tenant_id: str, list_id: str, record_id: str) -> bool:
        return await self.inner.is_member(tenant_id, list_id, record_id)

    async def list_owners(self, tenant_id: str) -> list[Owner]:
        return await self.inner.list_owners(tenant_id)

    async def get_subscription_status(self, tenant_id: str, contact_id: str) -> str:
        return await self.inner.get_subscription_status(tenant_id, contact_id)

    # Writes (invalidate after the write succeeded) --------------------------------------------
    async def create(
        self,
        tenant_id: str,
        object_type: str,
        properties: dict[str, Any],
        *,
        record_id: str = "",
        idempotency_key: str = "",
    ) -> Record:
        rec = await self.inner.create(
            tenant_id, object_type, properties, record_id=record_id, idempotency_key=idempotency_key
        )
        self._cache.invalidate(tenant_id, object_type, [rec.record_id])
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
        rec = await self.inner.update(
            tenant_id, object_type, record_id, properties, idempotency_key=idempotency_key
        )
        self._cache.invalidate(tenant_id, object_type, [record_id])
        return rec

    async def delete(self, tenant_id: str, object_type: str, record_id: str) -> None:
        await self.inner.delete(tenant_id, object_type, record_id)
        self._cache.invalidate(tenant_id, object_type, [record_id])

    async def associate(self, tenant_id: str, association: Association) -> None:
        await self.inner.associate(tenant_id, association)
        self._cache.invalidate_association(association, tenant_id)

    async def unassociate(self, tenant_id: str, association: Association) -> None:
        await self.inner.unassociate(tenant_id, association)
        self._cache.invalidate_association(association, tenant_id)

    # Lists and events do not feed data sources; pass through.
    async def create_list(self, tenant_id: str, name: str, object_type: str) -> StaticList:
        return await self.inner.create_list(tenant_id, name, object_type)

    async def add_to_list(self, tenant_id: str, list_id: str, record_ids: Sequence[str]) -> None:
        await self.inner.add_to_list(tenant_id, list_id, record_ids)

    async def remove_from_list(
        self, tenant_id: str, list_id: str, record_ids: Sequence[str]
    ) -> None:
        await self.inner.remove_from_list(tenant_id, list_id, record_ids)

    async def record_event(self, tenant_id: str, event: ChangeEvent) -> None:
        await self.inner.record_event(tenant_id, event)


# Methods the port gains later are delegated by __getattr__; never refuse to instantiate.
InvalidatingStore.__abstractmethods__ = frozenset()

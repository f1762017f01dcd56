"""A RecordStore that forwards every port method to an inner store (base of the decorators).

Adapter extras (``engine``, ``close``, ``define_object_type``...) are reached through
``__getattr__``. A method the port gains later would not reach ``__getattr__`` (the ABC's own
abstract method answers first), so any port method not written out below is forwarded by a
generated method.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import Any

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


class DelegatingStore(RecordStore):
    def __init__(self, inner: RecordStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
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
        limit: int | None = None,
        after: str = "",
    ) -> list[Association]:
        return await self.inner.list_associations(
            tenant_id, object_type, record_id, to_object_type, label=label, limit=limit, after=after
        )

    async def list_members(self, tenant_id: str, list_id: str) -> list[str]:
        return await self.inner.list_members(tenant_id, list_id)

    async def is_member(self, tenant_id: str, list_id: str, record_id: str) -> bool:
        return await self.inner.is_member(tenant_id, list_id, record_id)

    async def list_owners(self, tenant_id: str) -> list[Owner]:
        return await self.inner.list_owners(tenant_id)

    async def get_subscription_status(self, tenant_id: str, contact_id: str) -> str:
        return await self.inner.get_subscription_status(tenant_id, contact_id)

    # Writes ---------------------------------------------------------------------------------
    async def create(
        self,
        tenant_id: str,
        object_type: str,
        properties: dict[str, Any],
        *,
        record_id: str = "",
        idempotency_key: str = "",
    ) -> Record:
        return await self.inner.create(
            tenant_id, object_type, properties, record_id=record_id, idempotency_key=idempotency_key
        )

    async def update(
        self,
        tenant_id: str,
        object_type: str,
        record_id: str,
        properties: dict[str, Any],
        *,
        idempotency_key: str = "",
    ) -> Record:
        return await self.inner.update(
            tenant_id, object_type, record_id, properties, idempotency_key=idempotency_key
        )

    async def delete(self, tenant_id: str, object_type: str, record_id: str) -> None:
        await self.inner.delete(tenant_id, object_type, record_id)

    async def associate(self, tenant_id: str, association: Association) -> None:
        await self.inner.associate(tenant_id, association)

    async def unassociate(self, tenant_id: str, association: Association) -> None:
        await self.inner.unassociate(tenant_id, association)

    # Lists, events ---------------------------------------------------------------------------
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


def _forward(name: str) -> Any:
    @functools.wraps(getattr(RecordStore, name))
    async def method(self: DelegatingStore, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self.inner, name)(*args, **kwargs)

    return method


# Every public port coroutine, not only the abstract ones: the port's concrete extension
# defaults (batch_create, upsert_owner, ...) must reach the inner adapter's real implementation
# instead of the port's "not supported" fallback.
_PORT_METHODS = {
    name
    for name, fn in vars(RecordStore).items()
    if not name.startswith("_") and inspect.iscoroutinefunction(fn)
}
for _name in sorted(_PORT_METHODS - set(vars(DelegatingStore))):
    setattr(DelegatingStore, _name, _forward(_name))
DelegatingStore.__abstractmethods__ = frozenset()

"""A RecordStore decorator that tells the step cache about every write made through it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crmflow.model.records import Record
from crmflow.records.port import Association, RecordStore, RecordUpdate
from datasource_resolver.delegating_store import DelegatingStore

if TYPE_CHECKING:
    from datasource_resolver.cache import StepCache


class InvalidatingStore(DelegatingStore):
    def __init__(self, inner: RecordStore, cache: StepCache) -> None:
        super().__init__(inner)
        self._cache = cache

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

    async def batch_create(
        self,
        tenant_id: str,
        object_type: str,
        items: Sequence[dict[str, Any]],
        *,
        idempotency_key: str = "",
    ) -> list[Record]:
        recs = await self.inner.batch_create(
            tenant_id, object_type, items, idempotency_key=idempotency_key
        )
        self._cache.invalidate(tenant_id, object_type, [r.record_id for r in recs])
        return recs

    async def batch_update(
        self,
        tenant_id: str,
        object_type: str,
        items: Sequence[RecordUpdate],
        *,
        idempotency_key: str = "",
    ) -> list[Record]:
        recs = await self.inner.batch_update(
            tenant_id, object_type, items, idempotency_key=idempotency_key
        )
        self._cache.invalidate(tenant_id, object_type, [i.record_id for i in items])
        return recs

    async def delete(self, tenant_id: str, object_type: str, record_id: str) -> None:
        await self.inner.delete(tenant_id, object_type, record_id)
        self._cache.invalidate(tenant_id, object_type, [record_id])

    async def associate(self, tenant_id: str, association: Association) -> None:
        await self.inner.associate(tenant_id, association)
        self._cache.invalidate_association(association, tenant_id)

    async def unassociate(self, tenant_id: str, association: Association) -> None:
        await self.inner.unassociate(tenant_id, association)
        self._cache.invalidate_association(association, tenant_id)

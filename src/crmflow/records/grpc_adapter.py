"""GrpcRecordStore: the CRM port over ``crmflow.api.crm.v1.CrmService``.

Used by every service but the store's owner in embedded mode, and by all of them when a
platform plugs in its own CRM (``CRMFLOW_CRM_MODE=grpc``, ``CRMFLOW_CRM_ADDRESS``). gRPC errors
become the same ``crmflow.errors`` the SQL store raises (InvalidArgument with the server's field
violations, NotFound with its resource), so callers can't tell the adapters apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2

from crmflow import errors as e
from crmflow.api.crm.v1 import crm_service_pb2 as pb
from crmflow.api.crm.v1 import crm_service_pb2_grpc as pb_grpc
from crmflow.api.crm.v1 import records_pb2
from crmflow.api.workflow.v1 import criteria_pb2, workflow_pb2
from crmflow.grpc.channel import open_channel
from crmflow.grpc.errors import from_rpc_error, status_from_rpc_error
from crmflow.model.convert import from_proto, message_to_dict, to_proto
from crmflow.model.criteria import FilterGroup
from crmflow.model.data_sources import DataSource
from crmflow.model.records import ChangeEvent, Record
from crmflow.records.port import (
    MAX_ASSOCIATION_PAGE,
    Association,
    EventDefinition,
    ObjectTypeDefinition,
    Owner,
    PropertyDefinition,
    PropertyHistoryEntry,
    RecordStore,
    RecordUpdate,
    ResolvedSources,
    SearchPage,
    StaticList,
    SubscriptionStatus,
    check_page_limit,
)
from crmflow.settings import Settings

T = TypeVar("T")
DEFAULT_TIMEOUT = 30.0


def map_rpc_error(err: grpc.aio.AioRpcError) -> Exception:
    """The domain error a gRPC failure stands for (the error itself when it stands for none)."""
    if err.code() == grpc.StatusCode.NOT_FOUND:
        status = status_from_rpc_error(err)
        for d in status.details if status else []:
            if d.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
                info = error_details_pb2.ResourceInfo()
                d.Unpack(info)
                return e.NotFound(info.resource_type, info.resource_name, err.details() or None)
        return e.NotFound("resource", "", err.details() or "not found")
    return from_rpc_error(err) or err


def _struct(props: dict[str, Any]) -> Any:
    from google.protobuf import struct_pb2

    s = struct_pb2.Struct()
    s.update(props)
    return s


def _ints(value: Any) -> Any:
    """protobuf Struct carries every number as a double; give integral ones back as int, as the
    embedded store returns them (its number normalisation stores 12, not 12.0)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def _rec(msg: records_pb2.Record) -> Record:
    rec = from_proto(msg, Record, field="record")
    rec.properties = {k: _ints(v) for k, v in rec.properties.items()}
    return rec


def _to_rec(rec: Record) -> records_pb2.Record:
    return to_proto(rec, records_pb2.Record)


class GrpcRecordStore(RecordStore):
    def __init__(self, channel: grpc.aio.Channel, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._channel = channel
        self._stub = pb_grpc.CrmServiceStub(channel)
        self._timeout = timeout
        # False once the CRM answered ResolveDataSources with UNIMPLEMENTED (older platforms).
        self._resolve_rpc = True

    @classmethod
    def connect(cls, address: str, settings: Settings | None = None) -> GrpcRecordStore:
        return cls(open_channel(address, settings))

    async def close(self) -> None:
        await self._channel.close(None)

    async def _call(self, method: Callable[..., Awaitable[T]], req: Any) -> T:
        try:
            return await method(req, timeout=self._timeout)
        except grpc.aio.AioRpcError as err:
            raise map_rpc_error(err) from None

    @staticmethod
    def _criteria(criteria: FilterGroup | None) -> dict[str, Any]:
        if criteria is None:
            return {}
        return {"criteria": to_proto(criteria, criteria_pb2.FilterGroup)}

    # Schema ---------------------------------------------------------------------------
    async def list_object_types(self, tenant_id: str) -> list[ObjectTypeDefinition]:
        r = await self._call(
            self._stub.ListObjectTypes, pb.ListObjectTypesRequest(tenant_id=tenant_id)
        )
        return [from_proto(t, ObjectTypeDefinition) for t in r.object_types]

    async def list_properties(self, tenant_id: str, object_type: str) -> list[PropertyDefinition]:
        r = await self._call(
            self._stub.ListProperties,
            pb.ListPropertiesRequest(tenant_id=tenant_id, object_type=object_type),
        )
        return [from_proto(p, PropertyDefinition) for p in r.properties]

    async def define_object_type(
        self,
        tenant_id: str,
        definition: ObjectTypeDefinition,
        properties: Sequence[PropertyDefinition] = (),
    ) -> ObjectTypeDefinition:
        r = await self._call(
            self._stub.CreateObjectType,
            pb.CreateObjectTypeRequest(
                tenant_id=tenant_id,
                object_type=to_proto(definition, records_pb2.ObjectTypeDefinition),
                properties=[to_proto(p, records_pb2.PropertyDefinition) for p in properties],
            ),
        )
        return from_proto(r.object_type, ObjectTypeDefinition)

    async def define_property(
        self, tenant_id: str, definition: PropertyDefinition
    ) -> PropertyDefinition:
        r = await self._call(
            self._stub.UpsertProperty,
            pb.UpsertPropertyRequest(
                tenant_id=tenant_id, property=to_proto(definition, records_pb2.PropertyDefinition)
            ),
        )
        return from_proto(r.property, PropertyDefinition)

    # Custom event definitions ----------------------------------------------------------
    # A platform CRM without definitions answers UNIMPLEMENTED: read as "nothing defined"
    # (free-form events, as before definitions existed), so readers need no special case.
    async def define_event(self, tenant_id: str, definition: EventDefinition) -> EventDefinition:
        r = await self._call(
            self._stub.UpsertEventDefinition,
            pb.UpsertEventDefinitionRequest(
                tenant_id=tenant_id, definition=to_proto(definition, records_pb2.EventDefinition)
            ),
        )
        return from_proto(r.definition, EventDefinition, field="definition")

    async def get_event_definition(self, tenant_id: str, name: str) -> EventDefinition:
        try:
            r = await self._stub.GetEventDefinition(
                pb.GetEventDefinitionRequest(tenant_id=tenant_id, name=name),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise e.NotFound("event_definition", name) from None
            raise map_rpc_error(err) from None
        return from_proto(r.definition, EventDefinition, field="definition")

    async def list_event_definitions(
        self, tenant_id: str, object_type: str = ""
    ) -> list[EventDefinition]:
        try:
            r = await self._stub.ListEventDefinitions(
                pb.ListEventDefinitionsRequest(tenant_id=tenant_id, object_type=object_type),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                return []
            raise map_rpc_error(err) from None
        return [from_proto(d, EventDefinition, field="definitions") for d in r.definitions]

    # Records --------------------------------------------------------------------------
    async def get(self, tenant_id: str, object_type: str, record_id: str) -> Record:
        r = await self._call(
            self._stub.GetRecord,
            pb.GetRecordRequest(tenant_id=tenant_id, object_type=object_type, record_id=record_id),
        )
        return _rec(r.record)

    async def batch_get(
        self, tenant_id: str, object_type: str, record_ids: Sequence[str]
    ) -> list[Record]:
        r = await self._call(
            self._stub.BatchGetRecords,
            pb.BatchGetRecordsRequest(
                tenant_id=tenant_id, object_type=object_type, record_ids=list(record_ids)
            ),
        )
        return [_rec(x) for x in r.records]

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
        if not self._resolve_rpc:  # this CRM said UNIMPLEMENTED: the other rpcs, overlapped
            from crmflow.records.sources import resolve_each

            return await resolve_each(
                self,
                tenant_id,
                object_type,
                record_id,
                sources,
                enrolled=enrolled,
                include_record=include_record,
                concurrent=True,
            )
        req = pb.ResolveDataSourcesRequest(
            tenant_id=tenant_id,
            object_type=object_type,
            record_id=record_id,
            sources=[to_proto(s, workflow_pb2.DataSource) for s in sources],
            enrolled=_to_rec(enrolled) if enrolled is not None else None,
            include_record=include_record,
        )
        try:
            r = await self._stub.ResolveDataSources(req, timeout=self._timeout)
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise map_rpc_error(err) from None
            self._resolve_rpc = False  # a platform CRM without the batched rpc
            return await self.resolve_sources(
                tenant_id,
                object_type,
                record_id,
                sources,
                enrolled=enrolled,
                include_record=include_record,
            )
        return ResolvedSources(
            record=_rec(r.record) if r.HasField("record") else None,
            sources={
                s.source_id: _rec(s.record) if s.HasField("record") else None for s in r.sources
            },
            skipped={s.source_id: s.skipped_reason for s in r.sources if s.skipped_reason},
        )

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
        if limit <= 0:  # 0 would mean "default" on the wire; the port refuses it
            raise e.InvalidArgument.field("limit", "must be between 1 and 1000")
        r = await self._call(
            self._stub.SearchRecords,
            pb.SearchRecordsRequest(
                tenant_id=tenant_id,
                object_type=object_type,
                limit=limit,
                cursor=cursor,
                sort=sort,
                **self._criteria(criteria),
            ),
        )
        return SearchPage(
            records=[_rec(x) for x in r.records], total=r.total, next_cursor=r.next_cursor
        )

    async def count(
        self, tenant_id: str, object_type: str, criteria: FilterGroup | None = None
    ) -> int:
        r = await self._call(
            self._stub.CountRecords,
            pb.CountRecordsRequest(
                tenant_id=tenant_id, object_type=object_type, **self._criteria(criteria)
            ),
        )
        return int(r.count)

    async def create(
        self,
        tenant_id: str,
        object_type: str,
        properties: dict[str, Any],
        *,
        record_id: str = "",
        idempotency_key: str = "",
    ) -> Record:
        r = await self._call(
            self._stub.CreateRecord,
            pb.CreateRecordRequest(
                tenant_id=tenant_id,
                object_type=object_type,
                properties=_struct(properties),
                record_id=record_id,
                idempotency_key=idempotency_key,
            ),
        )
        return _rec(r.record)

    async def batch_create(
        self,
        tenant_id: str,
        object_type: str,
        items: Sequence[dict[str, Any]],
        *,
        idempotency_key: str = "",
    ) -> list[Record]:
        r = await self._call(
            self._stub.BatchCreateRecords,
            pb.BatchCreateRecordsRequest(
                tenant_id=tenant_id,
                object_type=object_type,
                records=[_struct(p) for p in items],
                idempotency_key=idempotency_key,
            ),
        )
        return [_rec(x) for x in r.records]

    async def update(
        self,
        tenant_id: str,
        object_type: str,
        record_id: str,
        properties: dict[str, Any],
        *,
        idempotency_key: str = "",
    ) -> Record:
        r = await self._call(
            self._stub.UpdateRecord,
            pb.UpdateRecordRequest(
                tenant_id=tenant_id,
                object_type=object_type,
                record_id=record_id,
                properties=_struct(properties),
                idempotency_key=idempotency_key,
            ),
        )
        return _rec(r.record)

    async def batch_update(
        self,
        tenant_id: str,
        object_type: str,
        items: Sequence[RecordUpdate],
        *,
        idempotency_key: str = "",
    ) -> list[Record]:
        r = await self._call(
            self._stub.BatchUpdateRecords,
            pb.BatchUpdateRecordsRequest(
                tenant_id=tenant_id,
                object_type=object_type,
                idempotency_key=idempotency_key,
                records=[
                    records_pb2.RecordUpdate(
                        record_id=i.record_id, properties=_struct(i.properties)
                    )
                    for i in items
                ],
            ),
        )
        return [_rec(x) for x in r.records]

    async def delete(self, tenant_id: str, object_type: str, record_id: str) -> None:
        await self._call(
            self._stub.DeleteRecord,
            pb.DeleteRecordRequest(
                tenant_id=tenant_id, object_type=object_type, record_id=record_id
            ),
        )

    async def property_history(
        self, tenant_id: str, object_type: str, record_id: str, property: str
    ) -> list[PropertyHistoryEntry]:
        r = await self._call(
            self._stub.GetPropertyHistory,
            pb.GetPropertyHistoryRequest(
                tenant_id=tenant_id, object_type=object_type, record_id=record_id, property=property
            ),
        )
        entries = [PropertyHistoryEntry.model_validate(message_to_dict(x)) for x in r.entries]
        for entry in entries:
            entry.value = _ints(entry.value)
        return entries

    # Associations -----------------------------------------------------------------------
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
        check_page_limit(limit)
        out: list[Association] = []
        records = 0  # associated records in ``out``
        while True:
            # unpaged (0) unless a limit is asked; a limit over the wire's page size takes
            # several pages
            size = 0 if limit is None else min(limit - records, MAX_ASSOCIATION_PAGE)
            r = await self._call(
                self._stub.ListAssociations,
                pb.ListAssociationsRequest(
                    tenant_id=tenant_id,
                    object_type=object_type,
                    record_id=record_id,
                    to_object_type=to_object_type,
                    label=label,
                    page_size=size,
                    page_token=after,
                ),
            )
            page = [from_proto(a, Association) for a in r.associations]
            out += page
            records += len({a.to_record_id for a in page})
            if not size or not r.next_page_token or records >= (limit or 0):
                return out
            after = r.next_page_token

    async def associate(self, tenant_id: str, association: Association) -> None:
        await self._call(
            self._stub.CreateAssociation,
            pb.CreateAssociationRequest(
                tenant_id=tenant_id, association=to_proto(association, records_pb2.Association)
            ),
        )

    async def unassociate(self, tenant_id: str, association: Association) -> None:
        await self._call(
            self._stub.DeleteAssociation,
            pb.DeleteAssociationRequest(
                tenant_id=tenant_id, association=to_proto(association, records_pb2.Association)
            ),
        )

    # Lists ------------------------------------------------------------------------------
    async def create_list(self, tenant_id: str, name: str, object_type: str) -> StaticList:
        r = await self._call(
            self._stub.CreateList,
            pb.CreateListRequest(tenant_id=tenant_id, name=name, object_type=object_type),
        )
        return from_proto(r.list, StaticList)

    async def get_list(self, tenant_id: str, list_id: str) -> StaticList:
        r = await self._call(
            self._stub.GetList, pb.GetListRequest(tenant_id=tenant_id, list_id=list_id)
        )
        return from_proto(r.list, StaticList)

    async def list_lists(self, tenant_id: str, object_type: str = "") -> list[StaticList]:
        r = await self._call(
            self._stub.ListLists, pb.ListListsRequest(tenant_id=tenant_id, object_type=object_type)
        )
        return [from_proto(x, StaticList) for x in r.lists]

    async def add_to_list(self, tenant_id: str, list_id: str, record_ids: Sequence[str]) -> None:
        await self._call(
            self._stub.AddToList,
            pb.AddToListRequest(tenant_id=tenant_id, list_id=list_id, record_ids=list(record_ids)),
        )

    async def remove_from_list(
        self, tenant_id: str, list_id: str, record_ids: Sequence[str]
    ) -> None:
        await self._call(
            self._stub.RemoveFromList,
            pb.RemoveFromListRequest(
                tenant_id=tenant_id, list_id=list_id, record_ids=list(record_ids)
            ),
        )

    async def list_members(self, tenant_id: str, list_id: str) -> list[str]:
        r = await self._call(
            self._stub.ListListMembers,
            pb.ListListMembersRequest(tenant_id=tenant_id, list_id=list_id),
        )
        return list(r.record_ids)

    async def is_member(self, tenant_id: str, list_id: str, record_id: str) -> bool:
        r = await self._call(
            self._stub.CheckListMembership,
            pb.CheckListMembershipRequest(
                tenant_id=tenant_id, list_id=list_id, record_id=record_id
            ),
        )
        return bool(r.member)

    # Owners, subscriptions, events --------------------------------------------------------
    async def list_owners(self, tenant_id: str) -> list[Owner]:
        r = await self._call(self._stub.ListOwners, pb.ListOwnersRequest(tenant_id=tenant_id))
        return [from_proto(o, Owner) for o in r.owners]

    async def upsert_owner(self, tenant_id: str, owner: Owner) -> Owner:
        r = await self._call(
            self._stub.UpsertOwner,
            pb.UpsertOwnerRequest(tenant_id=tenant_id, owner=to_proto(owner, records_pb2.Owner)),
        )
        return from_proto(r.owner, Owner)

    async def get_subscription_status(self, tenant_id: str, contact_id: str) -> str:
        r = await self._call(
            self._stub.GetSubscriptionStatus,
            pb.GetSubscriptionStatusRequest(tenant_id=tenant_id, contact_id=contact_id),
        )
        return str(r.status)

    async def set_subscription_status(
        self, tenant_id: str, contact_id: str, status: SubscriptionStatus
    ) -> None:
        await self._call(
            self._stub.SetSubscriptionStatus,
            pb.SetSubscriptionStatusRequest(
                tenant_id=tenant_id, contact_id=contact_id, status=str(status)
            ),
        )

    async def record_event(self, tenant_id: str, event: ChangeEvent) -> None:
        await self._call(
            self._stub.RecordEvent,
            pb.RecordEventRequest(
                tenant_id=tenant_id, event=to_proto(event, records_pb2.ChangeEvent)
            ),
        )

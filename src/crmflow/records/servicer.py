"""CrmService over any RecordStore: the CRM port published as ``crmflow.api.crm.v1``.

Served in embedded mode by the datasource-resolver process (the store's one owner; see
``datasource_resolver.crm_host``). Proto is converted to the port's pydantic models here and
nowhere else; errors are the store's own ``crmflow.errors`` (the server interceptor maps them
to INVALID_ARGUMENT + BadRequest, NOT_FOUND + ResourceInfo, ...).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeAlias

import grpc
from pydantic import ValidationError

from crmflow.api.crm.v1 import crm_service_pb2 as pb
from crmflow.api.crm.v1 import crm_service_pb2_grpc as pb_grpc
from crmflow.api.crm.v1 import records_pb2
from crmflow.errors import InvalidArgument
from crmflow.grpc.errors import from_validation_error
from crmflow.grpc.server import ServiceBinding
from crmflow.model.convert import from_proto, message_to_dict, struct_to_dict, to_proto
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
    RecordStore,
    RecordUpdate,
)
from crmflow.records.sql_base import new_id

SERVICE_NAME = "crmflow.api.crm.v1.CrmService"
Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _rec(r: Record) -> records_pb2.Record:
    return to_proto(r, records_pb2.Record)


def _criteria(msg: Any, field: str = "criteria") -> FilterGroup | None:
    return from_proto(msg.criteria, FilterGroup, field=field) if msg.HasField("criteria") else None


def _props(msg: Any) -> dict[str, Any]:
    return struct_to_dict(msg)


class CrmServicer(pb_grpc.CrmServiceServicer):
    def __init__(self, store: RecordStore) -> None:
        self.store = store

    # Records --------------------------------------------------------------------------
    async def GetRecord(self, req: pb.GetRecordRequest, ctx: Ctx) -> pb.GetRecordResponse:
        r = await self.store.get(req.tenant_id, req.object_type, req.record_id)
        return pb.GetRecordResponse(record=_rec(r))

    async def BatchGetRecords(
        self, req: pb.BatchGetRecordsRequest, ctx: Ctx
    ) -> pb.BatchGetRecordsResponse:
        rs = await self.store.batch_get(req.tenant_id, req.object_type, list(req.record_ids))
        return pb.BatchGetRecordsResponse(records=[_rec(r) for r in rs])

    async def ResolveDataSources(
        self, req: pb.ResolveDataSourcesRequest, ctx: Ctx
    ) -> pb.ResolveDataSourcesResponse:
        sources = [
            from_proto(s, DataSource, field=f"sources[{i}]") for i, s in enumerate(req.sources)
        ]
        enrolled = (
            from_proto(req.enrolled, Record, field="enrolled") if req.HasField("enrolled") else None
        )
        got = await self.store.resolve_sources(
            req.tenant_id,
            req.object_type,
            req.record_id,
            sources,
            enrolled=enrolled,
            include_record=req.include_record,
        )
        return pb.ResolveDataSourcesResponse(
            record=_rec(got.record) if got.record is not None else None,
            sources=[
                pb.ResolvedDataSource(
                    source_id=s.source_id,
                    record=_rec(r) if (r := got.sources.get(s.source_id)) is not None else None,
                    skipped_reason=got.skipped.get(s.source_id, ""),
                )
                for s in sources
            ],
        )

    async def SearchRecords(
        self, req: pb.SearchRecordsRequest, ctx: Ctx
    ) -> pb.SearchRecordsResponse:
        page = await self.store.search(
            req.tenant_id,
            req.object_type,
            _criteria(req),
            limit=req.limit or 100,
            cursor=req.cursor,
            sort=req.sort,
        )
        return pb.SearchRecordsResponse(
            records=[_rec(r) for r in page.records], total=page.total, next_cursor=page.next_cursor
        )

    async def CountRecords(self, req: pb.CountRecordsRequest, ctx: Ctx) -> pb.CountRecordsResponse:
        n = await self.store.count(req.tenant_id, req.object_type, _criteria(req))
        return pb.CountRecordsResponse(count=n)

    async def CreateRecord(self, req: pb.CreateRecordRequest, ctx: Ctx) -> pb.CreateRecordResponse:
        r = await self.store.create(
            req.tenant_id,
            req.object_type,
            _props(req.properties),
            record_id=req.record_id,
            idempotency_key=req.idempotency_key,
        )
        return pb.CreateRecordResponse(record=_rec(r))

    async def BatchCreateRecords(
        self, req: pb.BatchCreateRecordsRequest, ctx: Ctx
    ) -> pb.BatchCreateRecordsResponse:
        rs = await self.store.batch_create(
            req.tenant_id,
            req.object_type,
            [_props(p) for p in req.records],
            idempotency_key=req.idempotency_key,
        )
        return pb.BatchCreateRecordsResponse(records=[_rec(r) for r in rs])

    async def UpdateRecord(self, req: pb.UpdateRecordRequest, ctx: Ctx) -> pb.UpdateRecordResponse:
        r = await self.store.update(
            req.tenant_id,
            req.object_type,
            req.record_id,
            _props(req.properties),
            idempotency_key=req.idempotency_key,
        )
        return pb.UpdateRecordResponse(record=_rec(r))

    async def BatchUpdateRecords(
        self, req: pb.BatchUpdateRecordsRequest, ctx: Ctx
    ) -> pb.BatchUpdateRecordsResponse:
        items = [
            RecordUpdate(record_id=u.record_id, properties=_props(u.properties))
            for u in req.records
        ]
        rs = await self.store.batch_update(
            req.tenant_id, req.object_type, items, idempotency_key=req.idempotency_key
        )
        return pb.BatchUpdateRecordsResponse(records=[_rec(r) for r in rs])

    async def DeleteRecord(self, req: pb.DeleteRecordRequest, ctx: Ctx) -> pb.DeleteRecordResponse:
        await self.store.delete(req.tenant_id, req.object_type, req.record_id)
        return pb.DeleteRecordResponse()

    async def GetPropertyHistory(
        self, req: pb.GetPropertyHistoryRequest, ctx: Ctx
    ) -> pb.GetPropertyHistoryResponse:
        entries = await self.store.property_history(
            req.tenant_id, req.object_type, req.record_id, req.property
        )
        return pb.GetPropertyHistoryResponse(
            entries=[to_proto(e, records_pb2.PropertyHistoryEntry) for e in entries]
        )

    # Associations ---------------------------------------------------------------------
    async def ListAssociations(
        self, req: pb.ListAssociationsRequest, ctx: Ctx
    ) -> pb.ListAssociationsResponse:
        if not 0 <= req.page_size <= MAX_ASSOCIATION_PAGE:
            raise InvalidArgument.field(
                "page_size", f"0..{MAX_ASSOCIATION_PAGE} (0: every association, unpaged)"
            )
        found = await self.store.list_associations(
            req.tenant_id,
            req.object_type,
            req.record_id,
            req.to_object_type,
            label=req.label,
            # one record more than asked: whether there is a next page
            limit=req.page_size + 1 if req.page_size else None,
            after=req.page_token,
        )
        token = ""
        if req.page_size:
            ids = list(dict.fromkeys(a.to_record_id for a in found))
            if len(ids) > req.page_size:
                token = ids[req.page_size - 1]
                found = [a for a in found if a.to_record_id <= token]
        return pb.ListAssociationsResponse(
            associations=[to_proto(a, records_pb2.Association) for a in found],
            next_page_token=token,
        )

    async def CreateAssociation(
        self, req: pb.CreateAssociationRequest, ctx: Ctx
    ) -> pb.CreateAssociationResponse:
        a = from_proto(req.association, Association, field="association")
        await self.store.associate(req.tenant_id, a)
        return pb.CreateAssociationResponse()

    async def DeleteAssociation(
        self, req: pb.DeleteAssociationRequest, ctx: Ctx
    ) -> pb.DeleteAssociationResponse:
        a = from_proto(req.association, Association, field="association")
        await self.store.unassociate(req.tenant_id, a)
        return pb.DeleteAssociationResponse()

    # Lists ------------------------------------------------------------------------------
    async def CreateList(self, req: pb.CreateListRequest, ctx: Ctx) -> pb.CreateListResponse:
        lst = await self.store.create_list(req.tenant_id, req.name, req.object_type)
        return pb.CreateListResponse(list=to_proto(lst, records_pb2.StaticList))

    async def GetList(self, req: pb.GetListRequest, ctx: Ctx) -> pb.GetListResponse:
        lst = await self.store.get_list(req.tenant_id, req.list_id)
        return pb.GetListResponse(list=to_proto(lst, records_pb2.StaticList))

    async def ListLists(self, req: pb.ListListsRequest, ctx: Ctx) -> pb.ListListsResponse:
        lists = await self.store.list_lists(req.tenant_id, req.object_type)
        return pb.ListListsResponse(lists=[to_proto(x, records_pb2.StaticList) for x in lists])

    async def AddToList(self, req: pb.AddToListRequest, ctx: Ctx) -> pb.AddToListResponse:
        await self.store.add_to_list(req.tenant_id, req.list_id, list(req.record_ids))
        return pb.AddToListResponse()

    async def RemoveFromList(
        self, req: pb.RemoveFromListRequest, ctx: Ctx
    ) -> pb.RemoveFromListResponse:
        await self.store.remove_from_list(req.tenant_id, req.list_id, list(req.record_ids))
        return pb.RemoveFromListResponse()

    async def ListListMembers(
        self, req: pb.ListListMembersRequest, ctx: Ctx
    ) -> pb.ListListMembersResponse:
        ids = await self.store.list_members(req.tenant_id, req.list_id)
        return pb.ListListMembersResponse(record_ids=ids)

    async def CheckListMembership(
        self, req: pb.CheckListMembershipRequest, ctx: Ctx
    ) -> pb.CheckListMembershipResponse:
        member = await self.store.is_member(req.tenant_id, req.list_id, req.record_id)
        return pb.CheckListMembershipResponse(member=member)

    # Owners, subscriptions --------------------------------------------------------------
    async def ListOwners(self, req: pb.ListOwnersRequest, ctx: Ctx) -> pb.ListOwnersResponse:
        owners = await self.store.list_owners(req.tenant_id)
        return pb.ListOwnersResponse(owners=[to_proto(o, records_pb2.Owner) for o in owners])

    async def UpsertOwner(self, req: pb.UpsertOwnerRequest, ctx: Ctx) -> pb.UpsertOwnerResponse:
        owner = from_proto(req.owner, Owner, field="owner")
        saved = await self.store.upsert_owner(req.tenant_id, owner)
        return pb.UpsertOwnerResponse(owner=to_proto(saved, records_pb2.Owner))

    async def GetSubscriptionStatus(
        self, req: pb.GetSubscriptionStatusRequest, ctx: Ctx
    ) -> pb.GetSubscriptionStatusResponse:
        status = await self.store.get_subscription_status(req.tenant_id, req.contact_id)
        return pb.GetSubscriptionStatusResponse(status=status)

    async def SetSubscriptionStatus(
        self, req: pb.SetSubscriptionStatusRequest, ctx: Ctx
    ) -> pb.SetSubscriptionStatusResponse:
        await self.store.set_subscription_status(
            req.tenant_id,
            req.contact_id,
            req.status,  # type: ignore[arg-type]  # validated
        )
        return pb.SetSubscriptionStatusResponse()

    # Schema ------------------------------------------------------------------------------
    async def ListObjectTypes(
        self, req: pb.ListObjectTypesRequest, ctx: Ctx
    ) -> pb.ListObjectTypesResponse:
        types = await self.store.list_object_types(req.tenant_id)
        return pb.ListObjectTypesResponse(
            object_types=[to_proto(t, records_pb2.ObjectTypeDefinition) for t in types]
        )

    async def CreateObjectType(
        self, req: pb.CreateObjectTypeRequest, ctx: Ctx
    ) -> pb.CreateObjectTypeResponse:
        ot = from_proto(req.object_type, ObjectTypeDefinition, field="object_type")
        props = [
            from_proto(p, PropertyDefinition, field=f"properties[{i}]")
            for i, p in enumerate(req.properties)
        ]
        saved = await self.store.define_object_type(req.tenant_id, ot, props)
        return pb.CreateObjectTypeResponse(
            object_type=to_proto(saved, records_pb2.ObjectTypeDefinition)
        )

    async def ListProperties(
        self, req: pb.ListPropertiesRequest, ctx: Ctx
    ) -> pb.ListPropertiesResponse:
        props = await self.store.list_properties(req.tenant_id, req.object_type)
        return pb.ListPropertiesResponse(
            properties=[to_proto(p, records_pb2.PropertyDefinition) for p in props]
        )

    async def UpsertProperty(
        self, req: pb.UpsertPropertyRequest, ctx: Ctx
    ) -> pb.UpsertPropertyResponse:
        prop = from_proto(req.property, PropertyDefinition, field="property")
        saved = await self.store.define_property(req.tenant_id, prop)
        return pb.UpsertPropertyResponse(property=to_proto(saved, records_pb2.PropertyDefinition))

    # Custom event definitions ----------------------------------------------------------
    async def UpsertEventDefinition(
        self, req: pb.UpsertEventDefinitionRequest, ctx: Ctx
    ) -> pb.UpsertEventDefinitionResponse:
        d = from_proto(req.definition, EventDefinition, field="definition")
        saved = await self.store.define_event(req.tenant_id, d)
        return pb.UpsertEventDefinitionResponse(
            definition=to_proto(saved, records_pb2.EventDefinition)
        )

    async def GetEventDefinition(
        self, req: pb.GetEventDefinitionRequest, ctx: Ctx
    ) -> pb.GetEventDefinitionResponse:
        d = await self.store.get_event_definition(req.tenant_id, req.name)
        return pb.GetEventDefinitionResponse(definition=to_proto(d, records_pb2.EventDefinition))

    async def ListEventDefinitions(
        self, req: pb.ListEventDefinitionsRequest, ctx: Ctx
    ) -> pb.ListEventDefinitionsResponse:
        ds = await self.store.list_event_definitions(req.tenant_id, req.object_type)
        return pb.ListEventDefinitionsResponse(
            definitions=[to_proto(d, records_pb2.EventDefinition) for d in ds]
        )

    # Events ------------------------------------------------------------------------------
    async def RecordEvent(self, req: pb.RecordEventRequest, ctx: Ctx) -> pb.RecordEventResponse:
        data = message_to_dict(req.event)
        data.setdefault("tenant_id", req.tenant_id)
        data.setdefault("event_id", new_id())
        data.setdefault("occurred_at", datetime.now(UTC).isoformat())
        data.setdefault("event_type", "CHANGE_EVENT_TYPE_UNSPECIFIED")
        event = from_dict_event(data)
        await self.store.record_event(req.tenant_id, event)
        return pb.RecordEventResponse(event_id=event.event_id)


def from_dict_event(data: dict[str, Any]) -> ChangeEvent:
    try:
        return ChangeEvent.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, "event") from None


def binding(store: RecordStore) -> ServiceBinding:
    """The CrmService binding for ``crmflow.grpc.server.start_server``."""
    servicer = CrmServicer(store)
    return ServiceBinding(
        SERVICE_NAME, lambda server: pb_grpc.add_CrmServiceServicer_to_server(servicer, server)
    )

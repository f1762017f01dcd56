"""DatasourceService: proto at the edge, the resolver inside."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.struct_pb2 import Struct

from crmflow.actions.catalogue import default_registry
from crmflow.actions.registry import ActionRegistry
from crmflow.api.datasource.v1 import datasource_service_pb2 as pb
from crmflow.api.datasource.v1 import datasource_service_pb2_grpc as pb_grpc
from crmflow.api.workflow.v1 import workflow_pb2
from crmflow.errors import InvalidArgument
from crmflow.grpc.server import ServiceBinding
from crmflow.model.convert import dict_to_struct, from_proto, struct_to_dict, to_proto
from crmflow.model.data_sources import DataSource
from crmflow.model.default_sources import default_data_sources
from crmflow.model.workflow import WorkflowDefinition
from crmflow.records.event_schema import load_event_definitions
from crmflow.records.port import RecordStore
from crmflow.tokens import Escape, references_in
from datasource_resolver.cache import StepCache
from datasource_resolver.fields import insertable_fields
from datasource_resolver.resolver import Resolver, ResolveRequest
from datasource_resolver.revisions import RevisionSource, RevisionUnavailable
from datasource_resolver.schema_view import load_properties
from datasource_resolver.validation import validate_references

SERVICE_NAME = "crmflow.api.datasource.v1.DatasourceService"

_ESCAPES = {
    pb.ESCAPE_NONE: Escape.NONE,
    pb.ESCAPE_HTML: Escape.HTML,
    pb.ESCAPE_JSON: Escape.JSON,
}
_GROUPS = {
    "enrolled_record": pb.FIELD_GROUP_ENROLLED_RECORD,
    "data_source": pb.FIELD_GROUP_DATA_SOURCE,
    "action_output": pb.FIELD_GROUP_ACTION_OUTPUT,
    "event": pb.FIELD_GROUP_EVENT,
}


def _required(value: str, name: str) -> str:
    if not value:
        raise InvalidArgument.field(name, "required")
    return value


def _definition(request: Any) -> WorkflowDefinition:
    if not request.HasField("definition"):
        raise InvalidArgument.field("definition", "required")
    return from_proto(request.definition, WorkflowDefinition, field="definition")


class DatasourceServicer(pb_grpc.DatasourceServiceServicer):
    def __init__(
        self,
        store: RecordStore,
        cache: StepCache,
        registry: ActionRegistry | None = None,
        *,
        revisions: RevisionSource | None = None,
    ) -> None:
        self._store = store
        self._revisions = revisions
        self._registry = registry or default_registry()
        self._resolver = Resolver(store, cache, self._registry)

    async def _request(
        self, request: pb.ResolveInputsRequest, context: grpc.aio.ServicerContext
    ) -> ResolveRequest:
        for name in ("tenant_id", "object_type", "record_id", "action_id"):
            _required(getattr(request, name), name)
        action_type, version = request.action_type, request.type_version or 1
        if request.HasField("definition"):
            definition = _definition(request)
            sources = definition.data_sources
            action = definition.actions.get(request.action_id)
            if action is None:
                raise InvalidArgument.field(
                    "action_id", f"no action {request.action_id!r} in the definition"
                )
            action_type, version = action.action_type, action.type_version
        else:
            sources = [
                from_proto(s, DataSource, field=f"data_sources[{i}]")
                for i, s in enumerate(request.data_sources)
            ]
            fields = struct_to_dict(request.fields)
            if (
                not sources
                and self._revisions is not None
                and request.workflow_id
                and request.revision > 0
                and references_in(list(fields.values())).sources
            ):
                pinned = await self._pinned(request, context)
                if pinned is not None:
                    sources = pinned.data_sources
                    action = pinned.actions.get(request.action_id)
                    if action is not None and not action_type:
                        action_type, version = action.action_type, action.type_version
        escapes = {}
        for name, mode in request.escapes.items():
            if mode not in _ESCAPES:
                raise InvalidArgument.field(f"escapes.{name}", "unknown escape mode")
            escapes[name] = _ESCAPES[mode]
        return ResolveRequest(
            tenant_id=request.tenant_id,
            workflow_id=request.workflow_id,
            revision=request.revision,
            object_type=request.object_type,
            record_id=request.record_id,
            action_id=request.action_id,
            fields=struct_to_dict(request.fields),
            action_outputs=struct_to_dict(request.action_outputs),
            event_properties=struct_to_dict(request.event_properties),
            data_sources=sources,
            action_type=action_type,
            type_version=version,
            escapes=escapes,
            step_key=request.step_key,
        )

    async def _pinned(
        self, request: pb.ResolveInputsRequest, context: grpc.aio.ServicerContext
    ) -> WorkflowDefinition | None:
        assert self._revisions is not None
        try:
            return await self._revisions.definition(
                request.tenant_id, request.workflow_id, request.revision
            )
        except RevisionUnavailable as exc:
            # Transient: the executor's activity retries.
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            raise  # unreachable: abort raises

    async def ResolveInputs(
        self, request: pb.ResolveInputsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResolveInputsResponse:
        result = await self._resolver.resolve(await self._request(request, context))
        return pb.ResolveInputsResponse(
            values=dict_to_struct(result.values, Struct),
            missing=result.missing,
            sources=[
                pb.ResolvedSource(
                    source_id=sid,
                    object_type=rec.object_type if rec else "",
                    record_id=rec.record_id if rec else "",
                )
                for sid, rec in result.sources.items()
            ],
        )

    async def ListInsertableFields(
        self, request: pb.ListInsertableFieldsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListInsertableFieldsResponse:
        tenant_id = _required(request.tenant_id, "tenant_id")
        definition = _definition(request)
        if request.action_id and request.action_id not in definition.actions:
            raise InvalidArgument.field("action_id", f"no action {request.action_id!r}")
        props = await load_properties(self._store, tenant_id, definition)
        events = await load_event_definitions(self._store, tenant_id, definition)
        fields = insertable_fields(
            definition, props, self._registry, action_id=request.action_id, events=events
        )
        return pb.ListInsertableFieldsResponse(
            fields=[
                pb.InsertableField(
                    token=f.token,
                    path=f.path,
                    label=f.label,
                    type=f.type,
                    group=_GROUPS[f.group],
                    source_id=f.source_id,
                    action_id=f.action_id,
                    object_type=f.object_type,
                    options=f.options,
                )
                for f in fields
            ]
        )

    async def ValidateReferences(
        self, request: pb.ValidateReferencesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ValidateReferencesResponse:
        tenant_id = _required(request.tenant_id, "tenant_id")
        definition = _definition(request)
        props = await load_properties(self._store, tenant_id, definition)
        events = await load_event_definitions(self._store, tenant_id, definition)
        checked = validate_references(definition, props, self._registry, events)
        return pb.ValidateReferencesResponse(checked=checked)

    async def ListDefaultDataSources(
        self, request: pb.ListDefaultDataSourcesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDefaultDataSourcesResponse:
        _required(request.tenant_id, "tenant_id")
        ot = _required(request.object_type, "object_type")
        return pb.ListDefaultDataSourcesResponse(
            data_sources=[to_proto(s, workflow_pb2.DataSource) for s in default_data_sources(ot)]
        )


def binding(
    store: RecordStore,
    cache: StepCache,
    registry: ActionRegistry | None = None,
    *,
    revisions: RevisionSource | None = None,
) -> ServiceBinding:
    servicer = DatasourceServicer(store, cache, registry, revisions=revisions)

    def add(server: grpc.aio.Server) -> None:
        pb_grpc.add_DatasourceServiceServicer_to_server(servicer, server)

    return ServiceBinding(SERVICE_NAME, add)

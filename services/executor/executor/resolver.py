"""Action inputs: every activity asks an ``InputResolver`` for its field values.

The real one is the datasource-resolver's ``DatasourceService.ResolveInputs`` (data sources,
personalization tokens, earlier outputs, event properties). Fields without any token skip the
rpc. ``LocalTokens`` renders the basic tokens itself — the record's own properties, earlier
action outputs and event properties — and is the fallback while a resolver answers UNIMPLEMENTED.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any

import grpc
from google.protobuf.struct_pb2 import Struct

from crmflow.api.datasource.v1 import datasource_service_pb2 as ds_pb
from crmflow.api.datasource.v1 import datasource_service_pb2_grpc as ds_grpc
from crmflow.api.workflow.v1 import workflow_pb2 as wf_pb
from crmflow.errors import InvalidArgument
from crmflow.grpc.channel import open_channel
from crmflow.grpc.errors import from_rpc_error
from crmflow.model.convert import dict_to_struct, struct_to_dict, to_proto
from crmflow.records.port import RecordStore
from crmflow.settings import Settings
from crmflow.tokens.render import build_context, resolve_value
from crmflow.tokens.syntax import TemplateError
from executor.payloads import ActionRequest

log = logging.getLogger("crmflow.executor.resolver")


def has_tokens(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, dict):
        return any(has_tokens(v) for v in value.values())
    if isinstance(value, list):
        return any(has_tokens(v) for v in value)
    return False


class InputResolver(ABC):
    @abstractmethod
    async def resolve(self, req: ActionRequest, fields: dict[str, Any]) -> dict[str, Any]:
        """The fields with every token replaced by its value."""

    async def close(self) -> None:
        return None


class LocalTokens(InputResolver):
    """The shared token language (crmflow.tokens) over the enrolled record, earlier action
    outputs and event properties; no data sources (those need the datasource-resolver)."""

    def __init__(self, store: RecordStore) -> None:
        self._store = store

    async def resolve(self, req: ActionRequest, fields: dict[str, Any]) -> dict[str, Any]:
        if not has_tokens(fields):
            return fields
        record = await self._store.get(req.tenant_id, req.object_type, req.record_id)
        context = build_context(
            object_type=req.object_type,
            record=record.properties,
            actions=req.action_outputs,
            event=req.event_properties,
        )
        try:
            return {k: _known(_render(v, context)) for k, v in fields.items()}
        except TemplateError as exc:
            raise InvalidArgument.field("fields", f"bad token: {exc}") from None


def _render(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return resolve_value(value, context) if "{{" in value else value
    if isinstance(value, dict):
        return {k: _render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, context) for v in value]
    return value


class GrpcResolver(InputResolver):
    """DatasourceService.ResolveInputs; falls back to ``LocalTokens`` on UNIMPLEMENTED."""

    def __init__(self, settings: Settings, fallback: InputResolver) -> None:
        self._channel = open_channel(settings.datasource_resolver_address, settings)
        self._stub = ds_grpc.DatasourceServiceStub(self._channel)
        self._fallback = fallback

    async def resolve(self, req: ActionRequest, fields: dict[str, Any]) -> dict[str, Any]:
        if not has_tokens(fields):
            return fields
        request = ds_pb.ResolveInputsRequest(
            tenant_id=req.tenant_id,
            workflow_id=req.workflow_id,
            revision=req.revision,
            object_type=req.object_type,
            record_id=req.record_id,
            action_id=req.action_id,
            fields=dict_to_struct(fields, Struct),
            action_outputs=dict_to_struct(req.action_outputs, Struct),
            event_properties=dict_to_struct(req.event_properties, Struct),
            data_sources=[to_proto(d, wf_pb.DataSource) for d in req.data_sources],
            action_type=req.action_type,
            type_version=req.type_version,
            step_key=req.idempotency_key,
        )
        try:
            resp = await self._stub.ResolveInputs(request, timeout=20)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                log.warning("DatasourceService.ResolveInputs unimplemented; rendering locally")
                return await self._fallback.resolve(req, fields)
            if err.code() in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.FAILED_PRECONDITION,
            ):
                raise (from_rpc_error(err) or err) from None
            raise
        return _known(struct_to_dict(resp.values))

    async def close(self) -> None:
        await self._channel.close()


def _known(value: Any) -> Any:
    """A whole-field token without data comes back as {"$unknown": path}: treat it as empty."""
    if isinstance(value, dict):
        if set(value) == {"$unknown"}:
            return None
        return {k: _known(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_known(v) for v in value]
    return value

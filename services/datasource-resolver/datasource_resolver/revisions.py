"""Published revisions, for callers of ResolveInputs that send neither definition nor sources.

The executor should pass the pinned revision's definition (or its data sources) with every
ResolveInputs; when a caller does not, and its fields read ``sources.*``, the revision is read
once from editor-api (``EditorService.ListRevisions``) and kept: a published revision never
changes, so the cache needs no invalidation (bounded, keyed by tenant).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

import grpc

from crmflow.grpc.channel import open_channel
from crmflow.model.convert import from_proto
from crmflow.model.workflow import WorkflowDefinition
from crmflow.settings import Settings

log = logging.getLogger("datasource_resolver.revisions")


class RevisionUnavailable(Exception):
    """editor-api could not be asked (the caller should retry)."""


class RevisionSource:
    def __init__(self, settings: Settings, *, max_entries: int = 2_000) -> None:
        self._settings = settings
        self._channel: grpc.aio.Channel | None = None
        self._cache: OrderedDict[tuple[str, str, int], WorkflowDefinition | None] = OrderedDict()
        self._max = max_entries

    def _stub(self) -> Any:
        from crmflow.api.editor.v1 import editor_service_pb2_grpc

        if self._channel is None:
            self._channel = open_channel(self._settings.editor_api_address, self._settings)
        return editor_service_pb2_grpc.EditorServiceStub(self._channel)

    async def definition(
        self, tenant_id: str, workflow_id: str, revision: int
    ) -> WorkflowDefinition | None:
        """The revision's definition; None when editor-api does not know it."""
        key = (tenant_id, workflow_id, revision)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        from crmflow.api.editor.v1 import editor_service_pb2 as pb

        try:
            resp = await self._stub().ListRevisions(
                pb.ListRevisionsRequest(tenant_id=tenant_id, workflow_id=workflow_id), timeout=10
            )
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                resp = None
            else:
                raise RevisionUnavailable(f"editor-api: {err.code().name}") from err
        found: WorkflowDefinition | None = None
        for rev in resp.revisions if resp is not None else ():
            if rev.revision == revision:
                found = from_proto(rev.definition, WorkflowDefinition, field="definition")
        if found is None:
            log.warning(
                "revision %s/%s r%d not found: no data sources", tenant_id, workflow_id, revision
            )
        self._cache[key] = found
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return found

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None

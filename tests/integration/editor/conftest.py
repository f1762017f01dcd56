"""editor-api through a real gRPC server, on SQLite and PostgreSQL (``db_url``).

EnrollmentService is a tiny real gRPC server that records what it receives: the hand-off is
what these tests check, not enrollment itself (the "test about something else" exception).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from editor_api.main import start
from google.protobuf import json_format, struct_pb2

from crmflow.api.editor.v1 import editor_service_pb2 as pb
from crmflow.api.editor.v1 import editor_service_pb2_grpc as pb_grpc
from crmflow.api.enrollment.v1 import enrollment_service_pb2 as en
from crmflow.api.enrollment.v1 import enrollment_service_pb2_grpc as en_grpc
from crmflow.api.workflow.v1 import workflow_pb2 as wf
from crmflow.grpc.server import RunningServer
from crmflow.settings import Settings
from tests.helpers import free_port


@dataclass
class EnrollmentDouble(en_grpc.EnrollmentServiceServicer):
    activated: list[en.ActivateRevisionRequest] = field(default_factory=list)
    deactivated: list[en.DeactivateWorkflowRequest] = field(default_factory=list)
    estimates: list[en.EstimateEnrollmentRequest] = field(default_factory=list)
    lists: list[en.SaveEstimateAsListRequest] = field(default_factory=list)

    async def ActivateRevision(self, req: Any, ctx: Any) -> Any:
        self.activated.append(req)
        return en.ActivateRevisionResponse()

    async def DeactivateWorkflow(self, req: Any, ctx: Any) -> Any:
        self.deactivated.append(req)
        return en.DeactivateWorkflowResponse()

    async def EstimateEnrollment(self, req: Any, ctx: Any) -> Any:
        self.estimates.append(req)
        return en.EstimateEnrollmentResponse(count=42, sample_record_ids=["r1", "r2"])

    async def SaveEstimateAsList(self, req: Any, ctx: Any) -> Any:
        self.lists.append(req)
        return en.SaveEstimateAsListResponse(list_id="list-1", count=42)


async def serve_double(port: int = 0) -> tuple[grpc.aio.Server, EnrollmentDouble, int]:
    double = EnrollmentDouble()  # type: ignore[abstract]
    server = grpc.aio.server()
    en_grpc.add_EnrollmentServiceServicer_to_server(double, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, double, bound


def struct(data: dict[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(data, struct_pb2.Struct())


@dataclass
class Editor:
    stub: pb_grpc.EditorServiceStub
    enrollment: EnrollmentDouble
    running: RunningServer
    tenant: str
    settings: Settings

    async def create(self, **defn: Any) -> pb.Workflow:
        defn.setdefault("object_type", "contact")
        r = await self.stub.CreateWorkflow(
            pb.CreateWorkflowRequest(
                tenant_id=self.tenant, actor="ann", definition=wf.WorkflowDefinition(**defn)
            )
        )
        return r.workflow

    async def add(
        self, wid: str, rev: int, action_type: str, fields: dict[str, Any] | None = None, **kw: Any
    ) -> pb.AddActionResponse:
        position = kw.pop("position", None)
        action = wf.Action(action_type=action_type, fields=struct(fields or {}), **kw)
        req = pb.AddActionRequest(
            tenant_id=self.tenant,
            workflow_id=wid,
            actor="ann",
            expected_draft_revision=rev,
            action=action,
        )
        if position is not None:
            req.position.CopyFrom(position)
        return await self.stub.AddAction(req)

    async def get(self, wid: str) -> pb.Workflow:
        r = await self.stub.GetWorkflow(
            pb.GetWorkflowRequest(tenant_id=self.tenant, workflow_id=wid)
        )
        return r.workflow

    async def validate(self, wid: str) -> pb.ValidateWorkflowResponse:
        return await self.stub.ValidateWorkflow(
            pb.ValidateWorkflowRequest(tenant_id=self.tenant, workflow_id=wid)
        )


@pytest.fixture
async def crm_store(tmp_path: Path) -> AsyncIterator[Any]:
    from crmflow.records.sql import SqlRecordStore

    store = await SqlRecordStore.open(f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}", migrate=True)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def editor(db_url: str, tmp_path: Path, crm_store: Any) -> AsyncIterator[Editor]:
    server, double, port = await serve_double()
    settings = Settings(
        data_dir=tmp_path, database_url=db_url, enrollment_address=f"127.0.0.1:{port}"
    )
    running = await start(settings, port=0, properties=crm_store, retry_interval=0.2)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield Editor(
            pb_grpc.EditorServiceStub(channel),
            double,
            running,
            f"t{uuid.uuid4().hex[:8]}",
            settings,
        )
    finally:
        await channel.close()
        await running.stop(0)
        await server.stop(0)


__all__ = ["Editor", "EnrollmentDouble", "free_port", "serve_double", "struct"]

"""A real enrollment service (gRPC on a free port, SQLite, the Temporal dev server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from enrollment.main import start
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from crmflow.api.enrollment.v1 import enrollment_service_pb2_grpc as pb_grpc
from crmflow.grpc.server import RunningServer
from crmflow.records.sql import SqlRecordStore
from crmflow.settings import Settings, TemporalSettings
from tests.integration.enrollment.standin import StandInEnrolledRecord


@dataclass
class Service:
    running: RunningServer
    stub: pb_grpc.EnrollmentServiceStub
    settings: Settings
    env: WorkflowEnvironment
    records: SqlRecordStore


def service_settings(tmp_path: Path, env: WorkflowEnvironment, task_queue: str) -> Settings:
    target = env.client.service_client.config.target_host
    temporal = TemporalSettings().model_copy(update={"address": target, "task_queue": task_queue})
    return Settings(data_dir=tmp_path).model_copy(update={"temporal": temporal})


@pytest.fixture
async def service(
    tmp_path: Path, temporal_env: WorkflowEnvironment, task_queue: str
) -> AsyncIterator[Service]:
    settings = service_settings(tmp_path, temporal_env, task_queue)
    records = await SqlRecordStore.open(f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}")
    running = await start(settings, port=0, records=records)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    async with Worker(
        temporal_env.client, task_queue=task_queue, workflows=[StandInEnrolledRecord]
    ):
        try:
            yield Service(
                running, pb_grpc.EnrollmentServiceStub(channel), settings, temporal_env, records
            )
        finally:
            await channel.close()
            await running.stop(0)


@pytest.fixture
async def ts_env(time_skipping_env: WorkflowEnvironment) -> WorkflowEnvironment:
    """The time-skipping server; the root fixture registers crmflow's search attributes."""
    return time_skipping_env

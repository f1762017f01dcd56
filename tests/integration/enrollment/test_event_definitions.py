"""Custom event definitions at ingest, the production path: a real enrollment service (gRPC,
Temporal) reading the definitions from a real CrmService over the gRPC adapter, the CRM on
SQLite and PostgreSQL. A defined event that doesn't fit is rejected item by item and enrolls
nothing; the rest of the batch, and undefined events, go on as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from enrollment.main import start
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb
from crmflow.api.enrollment.v1 import enrollment_service_pb2_grpc as pb_grpc
from crmflow.grpc.server import start_server
from crmflow.model.records import ChangeEventType
from crmflow.records.grpc_adapter import GrpcRecordStore
from crmflow.records.port import EventDefinition, PropertyDefinition, PropertyType
from crmflow.records.servicer import binding
from crmflow.records.sql import SqlRecordStore
from crmflow.settings import Settings
from tests.integration.enrollment.conftest import service_settings
from tests.integration.enrollment.helpers import revision, update
from tests.integration.enrollment.standin import StandInEnrolledRecord

pytestmark = pytest.mark.temporal


@pytest.fixture
async def wired(
    tmp_path: Path, db_url: str, temporal_env: WorkflowEnvironment, task_queue: str
) -> AsyncIterator[tuple[pb_grpc.EnrollmentServiceStub, GrpcRecordStore]]:
    sql = await SqlRecordStore.open(db_url)
    crm_server = await start_server([binding(sql)], settings=Settings(), port=0)
    crm = GrpcRecordStore.connect(f"127.0.0.1:{crm_server.port}")
    settings = service_settings(tmp_path, temporal_env, task_queue)
    running = await start(settings, port=0, records=crm)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        async with Worker(
            temporal_env.client, task_queue=task_queue, workflows=[StandInEnrolledRecord]
        ):
            yield pb_grpc.EnrollmentServiceStub(channel), crm
    finally:
        await channel.close()
        await running.stop(0)
        await crm.close()
        await crm_server.stop(0)
        await sql.close()


def _signup(tenant_id: str, record_id: str, props: dict[str, Any], name: str = "signup") -> Any:
    return update(
        tenant_id,
        record_id,
        {},
        snapshot=props,
        event_type=ChangeEventType.CUSTOM_EVENT,
        event_name=name,
    )


def _trigger(name: str) -> dict[str, Any]:
    return {"event": {"event_type": "EVENT_TYPE_CUSTOM_EVENT", "event_name": name}}


async def test_defined_events_are_checked_item_by_item(
    wired: tuple[pb_grpc.EnrollmentServiceStub, GrpcRecordStore], tenant_id: str
) -> None:
    stub, crm = wired
    await crm.define_event(
        tenant_id,
        EventDefinition(
            name="signup",
            object_type="contact",
            properties=[
                PropertyDefinition(
                    object_type="contact",
                    name="plan",
                    type=PropertyType.ENUMERATION,
                    options=["free", "pro"],
                ),
                PropertyDefinition(object_type="contact", name="seats", type=PropertyType.NUMBER),
            ],
        ),
    )
    for i in range(1, 6):
        await crm.create(tenant_id, "contact", {"email": f"c{i}@x.test"}, record_id=f"c{i}")
    for wf, name in (("on-signup", "signup"), ("on-visit", "visited")):
        await stub.ActivateRevision(
            pb.ActivateRevisionRequest(
                tenant_id=tenant_id,
                revision=revision(tenant_id, wf, {"triggers": [_trigger(name)]}),
            )
        )
    res = await stub.IngestEvents(
        pb.IngestEventsRequest(
            tenant_id=tenant_id,
            events=[
                _signup(tenant_id, "c1", {"plan": "pro", "seats": 3}),
                _signup(tenant_id, "c2", {"plan": "pro", "seats": "three"}),
                _signup(tenant_id, "c3", {"plan": "pro", "coupon": "HALF"}),
                _signup(tenant_id, "c4", {"anything": {"goes": True}}, name="visited"),
                _signup(tenant_id, "c5", {"plan": "free"}),
            ],
        )
    )
    got = [
        ([(o.workflow_id, o.outcome) for o in r.outcomes], r.error_code, r.error_field)
        for r in res.results
    ]
    assert got == [
        ([("on-signup", "enrolled")], "", ""),
        ([], "INVALID_ARGUMENT", "events[1].properties.seats"),
        ([], "INVALID_ARGUMENT", "events[2].properties.coupon"),
        ([("on-visit", "enrolled")], "", ""),  # no definition: free-form as before
        ([("on-signup", "enrolled")], "", ""),
    ]
    assert "seats" in res.results[1].error
    # The rejected items enrolled nothing: their records are in no workflow.
    for record_id in ("c2", "c3"):
        listed = await stub.ListRecordEnrollments(
            pb.ListRecordEnrollmentsRequest(
                tenant_id=tenant_id, object_type="contact", record_id=record_id
            )
        )
        assert list(listed.enrollments) == []
    # Another tenant has no definition: the same event is free-form there.
    other = "w" + tenant_id[1:]
    await stub.ActivateRevision(
        pb.ActivateRevisionRequest(
            tenant_id=other,
            revision=revision(other, "on-signup", {"triggers": [_trigger("signup")]}),
        )
    )
    res = await stub.IngestEvents(
        pb.IngestEventsRequest(
            tenant_id=other, events=[_signup(other, "c2", {"plan": "pro", "seats": "three"})]
        )
    )
    assert [(o.outcome, res.results[0].error_code) for o in res.results[0].outcomes] == [
        ("enrolled", "")
    ]

"""The executor service as deployed: its composition root next to the datasource-resolver
(which hosts the embedded CRM), a real Temporal dev server, and gRPC clients.

This is the vertical slice: an EnrolledRecord started on the configured task queue runs
set_property through the gRPC CRM adapter, and the run shows up in ExecutorService.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.testing import WorkflowEnvironment

from crmflow.api.executor.v1 import executor_service_pb2 as pb
from crmflow.api.executor.v1 import executor_service_pb2_grpc as pb_grpc
from crmflow.grpc.errors import bad_request_fields
from crmflow.model.data_sources import DataSource, DataSourceKind
from crmflow.model.enrollment import EnrollmentInput, EnrollmentResult
from crmflow.records.grpc_adapter import GrpcRecordStore
from crmflow.records.port import Association
from crmflow.settings import Settings, TemporalSettings
from crmflow.temporal.ids import ENROLLMENT_WORKFLOW_TYPE, enrollment_workflow_id
from tests.workflows.harness import act, definition


@pytest.fixture
async def services(temporal_env: WorkflowEnvironment, tmp_path: Path, task_queue: str):  # type: ignore[no-untyped-def]
    from datasource_resolver.main import start as start_dr
    from executor.main import start as start_executor

    host, port = temporal_env.client.service_client.config.target_host.split(":")
    temporal = TemporalSettings(address=f"{host}:{port}").model_copy(
        update={"task_queue": task_queue, "custom_code_task_queue": f"{task_queue}-code"}
    )
    settings = Settings(data_dir=tmp_path, temporal=temporal)
    dr = await start_dr(settings, port=0)
    settings.datasource_resolver_address = f"127.0.0.1:{dr.port}"
    ex = await start_executor(settings, port=0)
    try:
        yield settings, ex
    finally:
        await ex.stop(0)
        await dr.stop(0)


async def test_enrolled_record_changes_the_crm_record_and_is_listed(
    services,
    temporal_env: WorkflowEnvironment,
    tenant_id: str,  # type: ignore[no-untyped-def]
) -> None:
    settings, ex = services
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{ex.port}")
    health = health_pb2_grpc.HealthStub(channel)
    status = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert status.status == health_pb2.HealthCheckResponse.SERVING

    crm = GrpcRecordStore.connect(settings.datasource_resolver_address, settings)
    rec = await crm.create(tenant_id, "contact", {"email": "ada@example.com", "num_employees": 1})
    defn = definition(
        [
            act("a1", "set_property", "a2", property="lifecyclestage", value="lead"),
            act("a2", "set_property", "a3", property="num_employees", mode="increment", amount=2),
            # Tokens go through the datasource-resolver's real ResolveInputs.
            act(
                "a3",
                "send_in_app_notification",
                user_ids=["u1"],
                title="New lead {{ contact.email }} ({{ contact.num_employees }} employees)",
            ),
        ]
    )
    inp = EnrollmentInput(
        tenant_id=tenant_id,
        workflow_id="wf-1",
        revision=1,
        object_type="contact",
        record_id=rec.record_id,
        enrollment_number=1,
        enrolled_at=datetime.now(UTC),
        definition=defn,
    )
    wf_id = enrollment_workflow_id(tenant_id, "wf-1", "contact", rec.record_id, 1)
    result = await temporal_env.client.execute_workflow(
        ENROLLMENT_WORKFLOW_TYPE,
        inp,
        id=wf_id,
        task_queue=settings.temporal.task_queue,
        result_type=EnrollmentResult,
    )
    assert result.status == "completed"
    props = (await crm.get(tenant_id, "contact", rec.record_id)).properties
    assert props["lifecyclestage"] == "lead" and props["num_employees"] == 3

    stub = pb_grpc.ExecutorServiceStub(channel)
    listed = await stub.ListEnrollments(
        pb.ListEnrollmentsRequest(tenant_id=tenant_id, workflow_id="wf-1")
    )
    assert [(e.run_workflow_id, e.status) for e in listed.enrollments] == [(wf_id, "completed")]
    timeline = await stub.GetEnrollmentTimeline(
        pb.GetEnrollmentTimelineRequest(tenant_id=tenant_id, run_workflow_id=wf_id)
    )
    assert [(e.action_id, e.status) for e in timeline.entries] == [
        ("a1", "succeeded"),
        ("a2", "succeeded"),
        ("a3", "succeeded"),
    ]
    notes = await stub.ListNotifications(
        pb.ListNotificationsRequest(tenant_id=tenant_id, user_id="u1")
    )
    assert [n.title for n in notes.notifications] == ["New lead ada@example.com (3 employees)"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListEnrollments(pb.ListEnrollmentsRequest(tenant_id=tenant_id, status="odd"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(bad_request_fields(err.value)) == {"workflow_id", "status"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetEnrollmentTimeline(
            pb.GetEnrollmentTimelineRequest(
                tenant_id=tenant_id, run_workflow_id=f"nope-{uuid.uuid4().hex}"
            )
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    await crm.close()
    await channel.close()


async def test_set_property_on_a_data_sources_record(
    services,
    temporal_env: WorkflowEnvironment,
    tenant_id: str,  # type: ignore[no-untyped-def]
) -> None:
    """HubSpot's "update the enrolled contact's associated company": the action writes to the
    record the data source resolves to, and skips (logged) when the source has no record."""
    settings, _ex = services
    crm = GrpcRecordStore.connect(settings.datasource_resolver_address, settings)
    contact = await crm.create(tenant_id, "contact", {"email": "ada@acme.test"})
    loner = await crm.create(tenant_id, "contact", {"email": "bob@nowhere.test"})
    acme = await crm.create(tenant_id, "company", {"name": "Acme", "numberofemployees": 10})
    other = await crm.create(tenant_id, "company", {"name": "Other", "numberofemployees": 5})
    for company, label in ((acme, "primary"), (other, "")):
        await crm.associate(
            tenant_id,
            Association(
                from_object_type="contact",
                from_record_id=contact.record_id,
                to_object_type="company",
                to_record_id=company.record_id,
                label=label,
            ),
        )
    defn = definition(
        [
            act(
                "a1",
                "set_property",
                "a2",
                property="industry",
                value="Software",
                target_source="company",
            ),
            act(
                "a2",
                "set_property",
                property="numberofemployees",
                mode="increment",
                amount=5,
                target_source="company",
            ),
        ]
    )
    defn.data_sources = [
        DataSource(
            source_id="company",
            kind=DataSourceKind.ASSOCIATED,
            object_type="company",
            association_label="primary",
        )
    ]
    results = {}
    for rec in (contact, loner):
        inp = EnrollmentInput(
            tenant_id=tenant_id,
            workflow_id="wf-src",
            revision=1,
            object_type="contact",
            record_id=rec.record_id,
            enrollment_number=1,
            enrolled_at=datetime.now(UTC),
            definition=defn,
        )
        results[rec.record_id] = await temporal_env.client.execute_workflow(
            ENROLLMENT_WORKFLOW_TYPE,
            inp,
            id=enrollment_workflow_id(tenant_id, "wf-src", "contact", rec.record_id, 1),
            task_queue=settings.temporal.task_queue,
            result_type=EnrollmentResult,
        )
    assert {r.status for r in results.values()} == {"completed"}
    got = (await crm.get(tenant_id, "company", acme.record_id)).properties
    assert got["industry"] == "Software" and got["numberofemployees"] == 15
    untouched = (await crm.get(tenant_id, "company", other.record_id)).properties
    assert "industry" not in untouched and untouched["numberofemployees"] == 5
    assert "industry" not in (await crm.get(tenant_id, "contact", contact.record_id)).properties
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{_ex.port}")
    timeline = await pb_grpc.ExecutorServiceStub(channel).GetEnrollmentTimeline(
        pb.GetEnrollmentTimelineRequest(
            tenant_id=tenant_id,
            run_workflow_id=enrollment_workflow_id(
                tenant_id, "wf-src", "contact", loner.record_id, 1
            ),
        )
    )
    assert [(e.action_id, e.status) for e in timeline.entries] == [
        ("a1", "skipped"),
        ("a2", "skipped"),
    ]
    await channel.close()
    await crm.close()


async def test_custom_code_role_runs_only_the_custom_code_worker(
    temporal_env: WorkflowEnvironment, tmp_path: Path, task_queue: str
) -> None:
    from executor.main import start as start_executor

    temporal = TemporalSettings(
        address=temporal_env.client.service_client.config.target_host
    ).model_copy(update={"task_queue": task_queue, "custom_code_task_queue": f"{task_queue}-c"})
    settings = Settings(
        data_dir=tmp_path, temporal=temporal, crm_mode="grpc", crm_address="127.0.0.1:1"
    )
    running = await start_executor(settings, port=0, role="custom-code")
    try:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        status = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        desc = await temporal_env.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace="default",
                task_queue=TaskQueue(name=f"{task_queue}-c"),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            )
        )
        assert len(desc.pollers) >= 1
        await channel.close()
    finally:
        await running.stop(0)

"""`crmflow up` as real processes, and the vertical slice through them.

One stack for the module (it takes seconds to start): every service SERVING, refusals of a
second stack and of a taken port, the slice editor-api -> enrollment -> Temporal -> executor ->
CRM asserted hop by hop, and finally Ctrl-C leaving no process behind.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from temporalio.client import Client

from crmflow.api.crm.v1 import crm_service_pb2, crm_service_pb2_grpc, records_pb2
from crmflow.api.editor.v1 import editor_service_pb2, editor_service_pb2_grpc
from crmflow.api.enrollment.v1 import enrollment_service_pb2, enrollment_service_pb2_grpc
from crmflow.api.workflow.v1 import workflow_pb2
from crmflow.model.convert import to_proto
from crmflow.model.workflow import WorkflowDefinition
from crmflow.temporal import ids, search_attributes
from crmflow.temporal.plugin import CrmflowPlugin
from tests.e2e.stack import Stack, alive, descendants, new_stack
from tests.helpers import eventually

pytestmark = [pytest.mark.temporal, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = new_stack(tmp_path_factory.mktemp("stack"))
    s.start()
    yield s
    if s.proc and s.proc.poll() is None:
        s.stop()


async def test_every_service_reports_serving(stack: Stack) -> None:
    for name in stack.ports:
        async with grpc.aio.insecure_channel(stack.address(name)) as ch:
            resp = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
            assert resp.status == health_pb2.HealthCheckResponse.SERVING, name
    printed = "\n".join(stack.output)
    assert f"http://127.0.0.1:{stack.ui_port}" in printed
    for name, port in stack.ports.items():
        assert f"127.0.0.1:{port}" in printed, name


def test_second_stack_on_the_same_data_dir_is_refused(stack: Stack) -> None:
    proc = subprocess.run(stack.args(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert "already running" in proc.stderr


def test_taken_port_is_refused_with_one_line(stack: Stack, tmp_path: Path) -> None:
    other = new_stack(tmp_path)
    other.ports["enrollment"] = stack.ports["enrollment"]
    proc = subprocess.run(other.args(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert "\n" not in line
    assert f"port {stack.ports['enrollment']} (enrollment) is already in use" in line


def _definition(tenant: str) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {
            "tenant_id": tenant,
            "name": "Qualify MQLs",
            "object_type": "contact",
            "enrollment": {
                "triggers": [
                    {
                        "criteria": {
                            "filter": {
                                "filters": [
                                    {
                                        "property": "lifecyclestage",
                                        "operator": "eq",
                                        "value": "marketingqualifiedlead",
                                    }
                                ]
                            }
                        }
                    }
                ]
            },
            "start_action_id": "set-status",
            "actions": {
                "set-status": {
                    "action_id": "set-status",
                    "action_type": "set_property",
                    "fields": {"property": "hs_lead_status", "value": "OPEN"},
                }
            },
        }
    )


def _struct(data: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(data)
    return s


async def test_vertical_slice(stack: Stack) -> None:
    tenant = f"slice{uuid.uuid4().hex[:6]}"
    async with (
        grpc.aio.insecure_channel(stack.address("editor-api")) as editor_ch,
        grpc.aio.insecure_channel(stack.address("enrollment")) as enroll_ch,
        grpc.aio.insecure_channel(stack.address("datasource-resolver")) as crm_ch,
    ):
        editor = editor_service_pb2_grpc.EditorServiceStub(editor_ch)
        enrollment = enrollment_service_pb2_grpc.EnrollmentServiceStub(enroll_ch)
        crm = crm_service_pb2_grpc.CrmServiceStub(crm_ch)

        # Hop 0: a contact that does not meet the trigger yet.
        created = await crm.CreateRecord(
            crm_service_pb2.CreateRecordRequest(
                tenant_id=tenant,
                object_type="contact",
                properties=_struct({"email": "ada@example.com", "lifecyclestage": "lead"}),
            )
        )
        record_id = created.record.record_id
        assert record_id

        # Hop 1: create and publish through editor-api.
        made = await editor.CreateWorkflow(
            editor_service_pb2.CreateWorkflowRequest(
                tenant_id=tenant,
                definition=to_proto(_definition(tenant), workflow_pb2.WorkflowDefinition),
            )
        )
        wf = made.workflow.definition.workflow_id
        published = await editor.PublishWorkflow(
            editor_service_pb2.PublishWorkflowRequest(
                tenant_id=tenant,
                workflow_id=wf,
                expected_draft_revision=made.workflow.draft_revision,
            )
        )
        assert published.revision.revision == 1

        # Hop 2: the change that meets the trigger, sent to enrollment (twice).
        event = records_pb2.ChangeEvent(
            event_id=f"ev-{uuid.uuid4().hex}",
            tenant_id=tenant,
            event_type=records_pb2.CHANGE_EVENT_TYPE_RECORD_UPDATED,
            object_type="contact",
            record_id=record_id,
            changes=[
                records_pb2.PropertyChange(
                    property="lifecyclestage",
                    old_value=struct_pb2.Value(string_value="lead"),
                    new_value=struct_pb2.Value(string_value="marketingqualifiedlead"),
                )
            ],
        )
        event.occurred_at.FromDatetime(datetime.now(UTC))
        # The CRM must agree with the event: the executor reads the record from it.
        await crm.UpdateRecord(
            crm_service_pb2.UpdateRecordRequest(
                tenant_id=tenant,
                object_type="contact",
                record_id=record_id,
                properties=_struct({"lifecyclestage": "marketingqualifiedlead"}),
            )
        )
        request = enrollment_service_pb2.IngestEventsRequest(tenant_id=tenant, events=[event])
        first = await enrollment.IngestEvents(request)
        second = await enrollment.IngestEvents(request)

    # Hop 3: exactly one Temporal workflow, with the deterministic id and search attributes.
    run_id = ids.enrollment_workflow_id(tenant, wf, "contact", record_id, 1)
    outcomes = [o for r in first.results for o in r.outcomes] + [
        o for r in second.results for o in r.outcomes
    ]
    # The CRM's own change event (outbox) and ours describe the same transition: whichever
    # arrives first enrolls, the other finds the record already enrolled.
    assert {o.outcome for o in outcomes} <= {"enrolled", "already_enrolled"}, (first, second)
    assert second.results[0].duplicate, second
    client = await Client.connect(f"127.0.0.1:{stack.temporal_port}", plugins=[CrmflowPlugin()])
    handle = client.get_workflow_handle(run_id)
    await handle.result()  # Hop 4: the executor ran it to completion.
    desc = await handle.describe()
    sa = desc.typed_search_attributes
    assert sa.get(search_attributes.TENANT_ID) == tenant
    assert sa.get(search_attributes.WORKFLOW_ID) == wf
    assert sa.get(search_attributes.REVISION) == 1
    assert sa.get(search_attributes.OBJECT_TYPE) == "contact"
    assert sa.get(search_attributes.RECORD_ID) == record_id
    assert desc.workflow_type == ids.ENROLLMENT_WORKFLOW_TYPE
    # Readable in the Temporal UI: the workflow's name and the record, then where it came from.
    assert await desc.static_summary() == f"Qualify MQLs: contact {record_id}"
    assert "revision 1" in (await desc.static_details() or "")

    async def one_run() -> bool:
        n = await client.count_workflows(
            f'CrmflowRecordId = "{record_id}" AND CrmflowTenantId = "{tenant}"'
        )
        assert n.count == 1, n.count
        return True

    await eventually(one_run, timeout=10)

    # Hop 5: the record's property changed in the CRM store.
    async with grpc.aio.insecure_channel(stack.address("datasource-resolver")) as crm_ch:
        got = await crm_service_pb2_grpc.CrmServiceStub(crm_ch).GetRecord(
            crm_service_pb2.GetRecordRequest(
                tenant_id=tenant, object_type="contact", record_id=record_id
            )
        )
    assert got.record.properties["hs_lead_status"] == "OPEN"


def test_demo_produces_runs(stack: Stack) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "crmflow.cli.main", "demo"],
        capture_output=True,
        text=True,
        timeout=180,
        env=stack.env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"http://127.0.0.1:{stack.ui_port}/namespaces/default/workflows" in proc.stdout
    assert "enrolled" in proc.stdout
    # Running it again loads nothing twice and publishes no second workflow.
    again = subprocess.run(
        [sys.executable, "-m", "crmflow.cli.main", "demo"],
        capture_output=True, text=True, timeout=180, env=stack.env(),
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "reusing workflow" in again.stdout


def test_ctrl_c_stops_everything_and_leaves_no_process(stack: Stack) -> None:
    assert stack.proc is not None
    children = descendants(stack.proc.pid)
    assert len(children) >= 5  # temporal + four services (+ their own helpers)
    code = stack.stop(signal.SIGINT)
    assert code == 0, "\n".join(stack.output)
    left = [pid for pid in children if alive(pid)]
    assert not left, f"processes left behind: {left}"

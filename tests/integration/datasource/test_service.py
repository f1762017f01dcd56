"""The datasource-resolver process through a real gRPC server (composition root ``start``).

In embedded mode it also hosts the CRM: CrmService (used here through the gRPC adapter to seed
data) and the outbox dispatcher (delivering to a stand-in EnrollmentService on a real server).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from datasource_resolver.main import start
from google.protobuf.struct_pb2 import Struct
from google.rpc import error_details_pb2

from crmflow.api.datasource.v1 import datasource_service_pb2 as pb
from crmflow.api.datasource.v1 import datasource_service_pb2_grpc as pb_grpc
from crmflow.api.editor.v1 import editor_service_pb2 as ed_pb
from crmflow.api.editor.v1 import editor_service_pb2_grpc as ed_grpc
from crmflow.api.enrollment.v1 import enrollment_service_pb2 as en_pb
from crmflow.api.enrollment.v1 import enrollment_service_pb2_grpc as en_grpc
from crmflow.api.workflow.v1 import workflow_pb2
from crmflow.grpc.errors import bad_request_fields, status_from_rpc_error
from crmflow.grpc.server import RunningServer, ServiceBinding, start_server
from crmflow.model.actions import Action, Connection
from crmflow.model.convert import dict_to_struct, struct_to_dict, to_proto
from crmflow.model.default_sources import default_data_sources
from crmflow.model.workflow import PublishedRevision, WorkflowDefinition
from crmflow.records.grpc_adapter import GrpcRecordStore
from crmflow.records.port import Association
from crmflow.settings import Settings
from tests.helpers import eventually


class FakeEnrollment(en_grpc.EnrollmentServiceServicer):
    """Stands in for the enrollment service: records what the outbox delivers."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def IngestEvents(self, request: Any, context: Any) -> Any:
        self.events.extend(request.events)
        return en_pb.IngestEventsResponse()


@pytest.fixture
async def enrollment() -> AsyncIterator[tuple[FakeEnrollment, RunningServer]]:
    fake = FakeEnrollment()  # type: ignore[abstract]
    running = await start_server(
        [
            ServiceBinding(
                "crmflow.api.enrollment.v1.EnrollmentService",
                lambda s: en_grpc.add_EnrollmentServiceServicer_to_server(fake, s),
            )
        ],
        settings=Settings(),
        port=0,
    )
    yield fake, running
    await running.stop(0)


@dataclass
class Service:
    stub: pb_grpc.DatasourceServiceStub
    crm: GrpcRecordStore  # the hosted CrmService, through the gRPC adapter
    address: str

    def __iter__(self) -> Iterator[Any]:
        return iter((self.stub, self.crm))


@pytest.fixture
async def service(
    tmp_path: Path, enrollment: tuple[FakeEnrollment, RunningServer]
) -> AsyncIterator[Service]:
    settings = Settings(
        data_dir=tmp_path,
        crm_mode="embedded",
        enrollment_address=f"127.0.0.1:{enrollment[1].port}",
    )
    running = await start(settings, port=0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    address = f"127.0.0.1:{running.port}"
    crm = GrpcRecordStore.connect(address, settings)
    try:
        yield Service(pb_grpc.DatasourceServiceStub(channel), crm, address)
    finally:
        await crm.close()
        await channel.close()
        await running.stop(1)


def _definition() -> WorkflowDefinition:
    return WorkflowDefinition(
        workflow_id="wf1",
        object_type="contact",
        start_action_id="a1",
        actions={
            "a1": Action(
                action_id="a1",
                action_type="custom_code",
                fields={"outputs": [{"name": "score", "type": "number"}]},
                connection=Connection(next_action_id="a2"),
            ),
            "a2": Action(
                action_id="a2",
                action_type="send_email",
                fields={
                    "subject": "Hi {{ contact.firstname | default: 'there' }}",
                    "body": "<p>{{ sources.company.name }} scored "
                    "{{ actions.a1.outputs.score }}</p>",
                },
            ),
        },
        data_sources=default_data_sources("contact"),
    )


async def test_resolve_inputs_over_grpc_with_the_hosted_crm(
    service: Service,
    enrollment: tuple[FakeEnrollment, RunningServer],
    tenant_id: str,
) -> None:
    stub, crm = service
    contact = await crm.create(tenant_id, "contact", {"firstname": "ann", "email": "a@acme.io"})
    company = await crm.create(tenant_id, "company", {"name": "Acme & Co", "domain": "acme.io"})
    await crm.associate(
        tenant_id,
        Association(
            from_object_type="contact",
            from_record_id=contact.record_id,
            to_object_type="company",
            to_record_id=company.record_id,
        ),
    )
    definition = _definition()
    req = pb.ResolveInputsRequest(
        tenant_id=tenant_id,
        workflow_id="wf1",
        revision=1,
        object_type="contact",
        record_id=contact.record_id,
        action_id="a2",
        fields=dict_to_struct(definition.actions["a2"].fields, Struct),
        action_outputs=dict_to_struct({"a1": {"score": 7}}, Struct),
        definition=to_proto(definition, workflow_pb2.WorkflowDefinition),
    )
    resp = await stub.ResolveInputs(req)
    assert struct_to_dict(resp.values) == {
        "subject": "Hi ann",
        "body": "<p>Acme &amp; Co scored 7</p>",  # send_email body: HTML-escaped
    }
    assert {s.source_id: s.record_id for s in resp.sources}["company"] == company.record_id

    # A change through CrmService is seen by the next resolution of the same step.
    await crm.update(tenant_id, "company", company.record_id, {"name": "Acme 2"})
    resp = await stub.ResolveInputs(req)
    assert struct_to_dict(resp.values)["body"] == "<p>Acme 2 scored 7</p>"

    # The hosted outbox delivered the CRM's change events to the enrollment service.
    fake = enrollment[0]
    await eventually(lambda: _has(fake, company.record_id), timeout=10)


async def _has(fake: FakeEnrollment, record_id: str) -> bool:
    await asyncio.sleep(0)
    return any(e.record_id == record_id for e in fake.events)


async def test_data_panel_lists_typed_fields(service: Service, tenant_id: str) -> None:
    stub, _ = service
    definition = to_proto(_definition(), workflow_pb2.WorkflowDefinition)
    resp = await stub.ListInsertableFields(
        pb.ListInsertableFieldsRequest(tenant_id=tenant_id, definition=definition, action_id="a2")
    )
    by_path = {f.path: f for f in resp.fields}
    assert by_path["contact.firstname"].type == "string"
    assert by_path["contact.firstname"].group == pb.FIELD_GROUP_ENROLLED_RECORD
    assert by_path["contact.lifecyclestage"].type == "enumeration"
    assert "customer" in by_path["contact.lifecyclestage"].options
    assert by_path["sources.company.domain"].group == pb.FIELD_GROUP_DATA_SOURCE
    assert by_path["sources.deal.amount"].type == "number"
    out = by_path["actions.a1.outputs.score"]
    assert (out.type, out.group, out.action_id) == ("number", pb.FIELD_GROUP_ACTION_OUTPUT, "a1")
    assert out.token == "{{ actions.a1.outputs.score }}"
    # The first action has no earlier outputs.
    resp = await stub.ListInsertableFields(
        pb.ListInsertableFieldsRequest(tenant_id=tenant_id, definition=definition, action_id="a1")
    )
    assert not [f for f in resp.fields if f.group == pb.FIELD_GROUP_ACTION_OUTPUT]


async def test_validate_references_names_each_unknown(service: Service, tenant_id: str) -> None:
    stub, _ = service
    ok = await stub.ValidateReferences(
        pb.ValidateReferencesRequest(
            tenant_id=tenant_id, definition=to_proto(_definition(), workflow_pb2.WorkflowDefinition)
        )
    )
    assert ok.checked == 3
    bad = _definition()
    bad.actions["a2"].fields["subject"] = "{{ sources.compny.name }} {{ contact.shoesize }}"
    bad.actions["a2"].fields["body"] = "{{ actions.a1.outputs.grade }}"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ValidateReferences(
            pb.ValidateReferencesRequest(
                tenant_id=tenant_id, definition=to_proto(bad, workflow_pb2.WorkflowDefinition)
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = _violations(err.value)
    assert ("actions.a2.fields.subject", "unknown property 'shoesize' of contact") in violations
    assert any(
        f == "actions.a2.fields.subject" and d.startswith("unknown data source 'compny'")
        for f, d in violations
    )
    assert any(
        f == "actions.a2.fields.body" and d.startswith("unknown output 'grade' of action 'a1'")
        for f, d in violations
    )


def _violations(err: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    status = status_from_rpc_error(err)
    assert status is not None
    out: list[tuple[str, str]] = []
    for d in status.details:
        br = error_details_pb2.BadRequest()
        if d.Unpack(br):
            out.extend((v.field, v.description) for v in br.field_violations)
    return out


async def test_bad_requests_are_invalid_argument(service: Service, tenant_id: str) -> None:
    stub, _ = service
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ResolveInputs(
            pb.ResolveInputsRequest(
                tenant_id=tenant_id,
                object_type="contact",
                record_id="1",
                action_id="a",
                fields=dict_to_struct({"x": "{{ ''.__class__ }}"}, Struct),
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "starts with a name" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ResolveInputs(pb.ResolveInputsRequest(tenant_id=tenant_id))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "object_type" in bad_request_fields(err.value)
    defaults = await stub.ListDefaultDataSources(
        pb.ListDefaultDataSourcesRequest(tenant_id=tenant_id, object_type="deal")
    )
    assert [s.source_id for s in defaults.data_sources] == ["company", "contact"]


async def test_grpc_crm_mode_resolves_against_a_remote_crm(
    tmp_path: Path,
    service: Service,
    tenant_id: str,
) -> None:
    """crm_mode=grpc: no CRM hosted here; records come from a CrmService elsewhere."""
    # The embedded instance plays the platform's CRM.
    contact = await service.crm.create(tenant_id, "contact", {"firstname": "ann"})
    settings = Settings(data_dir=tmp_path / "remote", crm_mode="grpc", crm_address=service.address)
    running = await start(settings, port=0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.DatasourceServiceStub(channel)
            resp = await stub.ResolveInputs(
                pb.ResolveInputsRequest(
                    tenant_id=tenant_id,
                    object_type="contact",
                    record_id=contact.record_id,
                    action_id="a",
                    fields=dict_to_struct({"x": "Hi {{ contact.firstname }}"}, Struct),
                )
            )
            assert struct_to_dict(resp.values) == {"x": "Hi ann"}
            # This instance does not serve CrmService itself.
            assert "crmflow.api.crm.v1.CrmService" not in running.service_names
    finally:
        await running.stop(1)


class FakeEditor(ed_grpc.EditorServiceServicer):
    """Stands in for editor-api: serves one published revision."""

    def __init__(self, revision: PublishedRevision) -> None:
        self.revision = revision
        self.calls = 0

    async def ListRevisions(self, request: Any, context: Any) -> Any:
        self.calls += 1
        if request.workflow_id != self.revision.workflow_id:
            return ed_pb.ListRevisionsResponse()
        return ed_pb.ListRevisionsResponse(
            revisions=[to_proto(self.revision, workflow_pb2.PublishedRevision)]
        )


async def test_data_sources_of_the_pinned_revision_when_the_caller_sends_none(
    tmp_path: Path, enrollment: tuple[FakeEnrollment, RunningServer], tenant_id: str
) -> None:
    definition = _definition()
    editor = FakeEditor(  # type: ignore[abstract]
        PublishedRevision(
            tenant_id=tenant_id,
            workflow_id="wf1",
            revision=3,
            published_at=datetime.now(UTC),
            definition=definition,
        )
    )
    editor_server = await start_server(
        [
            ServiceBinding(
                "crmflow.api.editor.v1.EditorService",
                lambda s: ed_grpc.add_EditorServiceServicer_to_server(editor, s),
            )
        ],
        settings=Settings(),
        port=0,
    )
    settings = Settings(
        data_dir=tmp_path,
        enrollment_address=f"127.0.0.1:{enrollment[1].port}",
        editor_api_address=f"127.0.0.1:{editor_server.port}",
    )
    running = await start(settings, port=0)
    crm = GrpcRecordStore.connect(f"127.0.0.1:{running.port}", settings)
    try:
        contact = await crm.create(tenant_id, "contact", {"firstname": "ann"})
        company = await crm.create(tenant_id, "company", {"name": "A&B"})
        await crm.associate(
            tenant_id,
            Association(
                from_object_type="contact",
                from_record_id=contact.record_id,
                to_object_type="company",
                to_record_id=company.record_id,
            ),
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.DatasourceServiceStub(channel)

            def req(workflow_id: str, step: str) -> pb.ResolveInputsRequest:
                return pb.ResolveInputsRequest(
                    tenant_id=tenant_id,
                    workflow_id=workflow_id,
                    revision=3,
                    object_type="contact",
                    record_id=contact.record_id,
                    action_id="a2",
                    step_key=step,
                    fields=dict_to_struct({"body": "<{{ sources.company.name }}>"}, Struct),
                )

            resp = await stub.ResolveInputs(req("wf1", "s1"))
            # Sources and the action type (send_email: HTML body) came from the revision.
            assert struct_to_dict(resp.values) == {"body": "<A&amp;B>"}
            await stub.ResolveInputs(req("wf1", "s2"))
            assert editor.calls == 1  # a published revision is fetched once
            resp = await stub.ResolveInputs(req("unknown-wf", "s3"))
            assert struct_to_dict(resp.values) == {"body": "<>"}
            assert list(resp.missing) == ["sources.company.name"]
        await editor_server.stop(0)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                await pb_grpc.DatasourceServiceStub(channel).ResolveInputs(req("wf2", "s4"))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # retryable, not a wrong answer
    finally:
        await crm.close()
        await running.stop(1)
        await editor_server.stop(0)  # again when the test failed before stopping it


async def test_data_panel_reads_custom_event_definitions(service: Service, tenant_id: str) -> None:
    """A defined custom event: its properties typed in the panel, unknown ones refused by
    ValidateReferences; an undefined one falls back to the trigger filters' guesses."""
    from crmflow.model.criteria import PropertyFilter
    from crmflow.model.triggers import EventTrigger, EventType, Trigger
    from crmflow.records.port import EventDefinition, PropertyDefinition, PropertyType

    stub, crm = service
    await crm.define_event(
        tenant_id,
        EventDefinition(
            name="viewed_pricing",
            label="Viewed pricing",
            object_type="contact",
            properties=[
                PropertyDefinition(
                    object_type="contact", name="seats", label="Seats", type=PropertyType.NUMBER
                ),
                PropertyDefinition(
                    object_type="contact",
                    name="plan",
                    type=PropertyType.ENUMERATION,
                    options=["free", "pro"],
                ),
            ],
        ),
    )
    wf = _definition()
    wf.enrollment.triggers.append(
        Trigger(
            event=EventTrigger(
                event_type=EventType.CUSTOM_EVENT,
                event_name="viewed_pricing",
                event_filters=[PropertyFilter(property="seats", operator="eq", value="3")],
            )
        )
    )
    wf.actions["a2"].fields["body"] = "{{ event.seats }} seats on {{ event.plan }}"
    definition = to_proto(wf, workflow_pb2.WorkflowDefinition)
    resp = await stub.ListInsertableFields(
        pb.ListInsertableFieldsRequest(tenant_id=tenant_id, definition=definition, action_id="a2")
    )
    events = {f.path: f for f in resp.fields if f.group == pb.FIELD_GROUP_EVENT}
    assert {p: (f.type, f.label) for p, f in events.items()} == {
        "event.seats": ("number", "Event: Seats"),
        "event.plan": ("enumeration", "Event: plan"),
    }
    assert list(events["event.plan"].options) == ["free", "pro"]
    ok = await stub.ValidateReferences(
        pb.ValidateReferencesRequest(tenant_id=tenant_id, definition=definition)
    )
    assert ok.checked == 3
    wf.actions["a2"].fields["body"] = "{{ event.seats }} {{ event.coupon }}"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ValidateReferences(
            pb.ValidateReferencesRequest(
                tenant_id=tenant_id, definition=to_proto(wf, workflow_pb2.WorkflowDefinition)
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(err.value) == [
        (
            "actions.a2.fields.body",
            "unknown property 'coupon' of event 'viewed_pricing' (known: plan, seats)",
        )
    ]
    # Another tenant has no definition: free-form, with the filter's guessed type.
    other = "q" + tenant_id[1:]
    resp = await stub.ListInsertableFields(
        pb.ListInsertableFieldsRequest(tenant_id=other, definition=definition, action_id="a2")
    )
    assert {(f.path, f.type) for f in resp.fields if f.group == pb.FIELD_GROUP_EVENT} == {
        ("event.seats", "string")
    }
    await stub.ValidateReferences(
        pb.ValidateReferencesRequest(
            tenant_id=other, definition=to_proto(wf, workflow_pb2.WorkflowDefinition)
        )
    )

"""Create / get / list / update / rename / publish / on-off / archive / delete / audit."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from editor_api.main import start

from crmflow.api.editor.v1 import editor_service_pb2 as pb
from crmflow.api.editor.v1 import editor_service_pb2_grpc as pb_grpc
from crmflow.api.workflow.v1 import workflow_pb2 as wf
from crmflow.grpc.errors import bad_request_fields
from crmflow.settings import Settings
from tests.helpers import eventually, free_port
from tests.integration.editor.conftest import Editor, serve_double, struct

ON = wf.WORKFLOW_STATUS_ON
OFF = wf.WORKFLOW_STATUS_OFF


async def rpc_error(coro: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro  # type: ignore[misc]
    return info.value


async def test_create_get_update_publish_roundtrip(editor: Editor) -> None:
    w = await editor.create(name="Welcome", folder="onboarding")
    wid = w.definition.workflow_id
    assert w.status == wf.WORKFLOW_STATUS_DRAFT and w.draft_revision == 1
    assert w.definition.tenant_id == editor.tenant
    added = await editor.add(
        wid, 1, "set_property", {"property": "lifecyclestage", "value": "lead"}
    )
    assert added.workflow.draft_revision == 2
    got = await editor.get(wid)
    assert got.definition.start_action_id == added.action_id

    d = got.definition
    d.description = "replaced"
    upd = await editor.stub.UpdateWorkflow(
        pb.UpdateWorkflowRequest(
            tenant_id=editor.tenant, definition=d, expected_draft_revision=2, actor="bob"
        )
    )
    assert upd.workflow.draft_revision == 3 and upd.workflow.definition.description == "replaced"
    d.object_type = "deal"
    err = await rpc_error(
        editor.stub.UpdateWorkflow(pb.UpdateWorkflowRequest(tenant_id=editor.tenant, definition=d))
    )
    assert "definition.object_type" in bad_request_fields(err)

    pub = await editor.stub.PublishWorkflow(
        pb.PublishWorkflowRequest(
            tenant_id=editor.tenant,
            workflow_id=wid,
            expected_draft_revision=3,
            enroll_existing=True,
            actor="bob",
        )
    )
    assert pub.workflow.status == ON and pub.revision.revision == 1
    assert not pub.workflow.handoff_pending and not pub.workflow.has_unpublished_changes
    [act] = editor.enrollment.activated
    assert act.enroll_existing and act.revision.revision == 1
    assert act.revision.definition.actions[added.action_id].action_type == "set_property"

    # Editing a live workflow edits the draft; revision 1 stays as it was.
    await editor.add(wid, 3, "delay", {"seconds": 3600})
    again = await editor.stub.PublishWorkflow(
        pb.PublishWorkflowRequest(tenant_id=editor.tenant, workflow_id=wid, actor="bob")
    )
    assert again.revision.revision == 2 and len(again.revision.definition.actions) == 2
    revs = await editor.stub.ListRevisions(
        pb.ListRevisionsRequest(tenant_id=editor.tenant, workflow_id=wid)
    )
    assert [r.revision for r in revs.revisions] == [2, 1]
    assert len(revs.revisions[1].definition.actions) == 1
    # A retried publish with nothing new returns the live revision, not a copy.
    same = await editor.stub.PublishWorkflow(
        pb.PublishWorkflowRequest(tenant_id=editor.tenant, workflow_id=wid)
    )
    assert same.revision.revision == 2 and len(editor.enrollment.activated) == 2


async def test_list_filters_and_paging(editor: Editor) -> None:
    for i in range(5):
        made = await editor.create(name=f"Deal flow {i}", object_type="deal", folder="sales")
    await editor.add(made.definition.workflow_id, 0, "delay", {"seconds": 60})
    await editor.create(name="Contact nurture", description="welcome series")
    t = editor.tenant
    deals = await editor.stub.ListWorkflows(
        pb.ListWorkflowsRequest(tenant_id=t, object_type="deal")
    )
    assert len(deals.workflows) == 5
    text = await editor.stub.ListWorkflows(pb.ListWorkflowsRequest(tenant_id=t, text="WELCOME"))
    assert [w.definition.name for w in text.workflows] == ["Contact nurture"]
    folder = await editor.stub.ListWorkflows(pb.ListWorkflowsRequest(tenant_id=t, folder="sales"))
    assert len(folder.workflows) == 5
    drafts = await editor.stub.ListWorkflows(
        pb.ListWorkflowsRequest(tenant_id=t, status=wf.WORKFLOW_STATUS_DRAFT)
    )
    assert len(drafts.workflows) == 6
    seen, token = [], ""
    while True:
        page = await editor.stub.ListWorkflows(
            pb.ListWorkflowsRequest(tenant_id=t, page_size=4, page_token=token)
        )
        seen += [w.definition.workflow_id for w in page.workflows]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 6
    brief = await editor.stub.ListWorkflows(
        pb.ListWorkflowsRequest(tenant_id=t, object_type="deal", summary_only=True)
    )
    assert all(w.definition.name and not w.definition.actions for w in brief.workflows)
    full = await editor.stub.ListWorkflows(pb.ListWorkflowsRequest(tenant_id=t, object_type="deal"))
    assert sum(len(w.definition.actions) for w in full.workflows) == 1
    other = await editor.stub.ListWorkflows(pb.ListWorkflowsRequest(tenant_id=t + "x"))
    assert not other.workflows  # tenant isolation
    one = deals.workflows[0].definition.workflow_id
    err = await rpc_error(
        editor.stub.GetWorkflow(pb.GetWorkflowRequest(tenant_id=t + "x", workflow_id=one))
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = await rpc_error(
        editor.stub.ListWorkflows(pb.ListWorkflowsRequest(tenant_id=t, page_token="!!"))
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in bad_request_fields(
        err
    )


async def test_rename_turn_off_on_archive_restore_delete_and_audit(editor: Editor) -> None:
    t = editor.tenant
    w = await editor.create()
    wid = w.definition.workflow_id
    r = await editor.stub.RenameWorkflow(
        pb.RenameWorkflowRequest(
            tenant_id=t, workflow_id=wid, name="Renamed", folder="f1", actor="cat"
        )
    )
    assert r.workflow.definition.name == "Renamed" and r.workflow.definition.folder == "f1"
    await editor.add(wid, 0, "delay", {"seconds": 60})
    await editor.stub.PublishWorkflow(pb.PublishWorkflowRequest(tenant_id=t, workflow_id=wid))
    err = await rpc_error(
        editor.stub.DeleteWorkflow(pb.DeleteWorkflowRequest(tenant_id=t, workflow_id=wid))
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "turn it off" in (
        err.details() or ""
    )

    off = await editor.stub.TurnOffWorkflow(
        pb.TurnOffWorkflowRequest(tenant_id=t, workflow_id=wid, unenroll_existing=True)
    )
    assert off.workflow.status == OFF
    assert [(d.workflow_id, d.unenroll_existing) for d in editor.enrollment.deactivated] == [
        (wid, True)
    ]
    on = await editor.stub.TurnOnWorkflow(
        pb.TurnOnWorkflowRequest(tenant_id=t, workflow_id=wid, enroll_existing=True)
    )
    assert editor.enrollment.activated[-1].enroll_existing
    assert on.workflow.status == ON and editor.enrollment.activated[-1].revision.revision == 1
    err = await rpc_error(
        editor.stub.TurnOnWorkflow(pb.TurnOnWorkflowRequest(tenant_id=t, workflow_id=wid))
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION

    arch = await editor.stub.ArchiveWorkflow(
        pb.ArchiveWorkflowRequest(tenant_id=t, workflow_id=wid)
    )
    assert (
        arch.workflow.status == wf.WORKFLOW_STATUS_ARCHIVED
        and len(editor.enrollment.deactivated) == 2
    )
    err = await rpc_error(editor.add(wid, 0, "delay", {"seconds": 60}))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "archived" in (err.details() or "")
    listed = await editor.stub.ListWorkflows(pb.ListWorkflowsRequest(tenant_id=t))
    assert not listed.workflows
    back = await editor.stub.RestoreWorkflow(
        pb.RestoreWorkflowRequest(tenant_id=t, workflow_id=wid)
    )
    assert back.workflow.status == OFF
    await editor.stub.DeleteWorkflow(
        pb.DeleteWorkflowRequest(tenant_id=t, workflow_id=wid, actor="cat")
    )
    err = await rpc_error(editor.get(wid))
    assert err.code() == grpc.StatusCode.NOT_FOUND

    log = await editor.stub.ListAuditEntries(
        pb.ListAuditEntriesRequest(tenant_id=t, workflow_id=wid)
    )
    ops = [e.operation for e in log.entries]
    assert ops[0] == "DeleteWorkflow" and ops[-1] == "CreateWorkflow"
    assert {
        "RenameWorkflow",
        "AddAction",
        "PublishWorkflow",
        "TurnOffWorkflow",
        "TurnOnWorkflow",
        "ArchiveWorkflow",
        "RestoreWorkflow",
    } <= set(ops)
    assert log.entries[-1].actor == "ann" and all(e.at.seconds > 0 for e in log.entries)
    page = await editor.stub.ListAuditEntries(
        pb.ListAuditEntriesRequest(tenant_id=t, workflow_id=wid, page_size=2)
    )
    assert len(page.entries) == 2 and page.next_page_token


async def test_preview_and_save_as_list_ask_enrollment(editor: Editor) -> None:
    w = await editor.create()
    wid = w.definition.workflow_id
    p = await editor.stub.PreviewEnrollment(
        pb.PreviewEnrollmentRequest(tenant_id=editor.tenant, workflow_id=wid, sample_size=5)
    )
    assert p.estimated_count == 42 and list(p.sample_record_ids) == ["r1", "r2"]
    assert editor.enrollment.estimates[0].definition.workflow_id == wid
    s = await editor.stub.SaveEnrollmentPreviewAsList(
        pb.SaveEnrollmentPreviewAsListRequest(
            tenant_id=editor.tenant, workflow_id=wid, list_name="Would enroll"
        )
    )
    assert s.list_id == "list-1" and editor.enrollment.lists[0].list_name == "Would enroll"
    err = await rpc_error(
        editor.stub.SaveEnrollmentPreviewAsList(
            pb.SaveEnrollmentPreviewAsListRequest(tenant_id=editor.tenant, workflow_id=wid)
        )
    )
    assert "list_name" in bad_request_fields(err)


async def test_publish_survives_enrollment_down_and_hands_off_later(tmp_path: Path) -> None:
    """Publish commits the revision with a pending hand-off; the retrier delivers it."""
    port = free_port()
    settings = Settings(data_dir=tmp_path, enrollment_address=f"127.0.0.1:{port}")
    running = await start(settings, port=0, retry_interval=0.2, properties=None)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    stub = pb_grpc.EditorServiceStub(channel)
    try:
        t = "t-handoff"
        c = await stub.CreateWorkflow(
            pb.CreateWorkflowRequest(
                tenant_id=t, definition=wf.WorkflowDefinition(object_type="contact")
            )
        )
        wid = c.workflow.definition.workflow_id
        await stub.AddAction(
            pb.AddActionRequest(
                tenant_id=t,
                workflow_id=wid,
                action=wf.Action(action_type="delay", fields=struct({"seconds": 60})),
            )
        )
        pub = await stub.PublishWorkflow(pb.PublishWorkflowRequest(tenant_id=t, workflow_id=wid))
        assert pub.workflow.status == ON and pub.workflow.handoff_pending
        assert "UNAVAILABLE" in pub.workflow.handoff_error
        server, double, _ = await serve_double(port)
        try:

            async def delivered() -> bool:
                w = (
                    await stub.GetWorkflow(pb.GetWorkflowRequest(tenant_id=t, workflow_id=wid))
                ).workflow
                return not w.handoff_pending and len(double.activated) == 1

            await eventually(delivered, timeout=20)
            assert double.activated[0].revision.revision == 1
        finally:
            await server.stop(0)
    finally:
        await channel.close()
        await running.stop(0)

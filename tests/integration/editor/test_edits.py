"""Granular edits, comments, data sources, triggers, settings, concurrency and undo/redo."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import struct_pb2

from crmflow.api.editor.v1 import editor_service_pb2 as pb
from crmflow.api.workflow.v1 import criteria_pb2 as cr
from crmflow.api.workflow.v1 import triggers_pb2 as tr
from crmflow.api.workflow.v1 import workflow_pb2 as wf
from crmflow.grpc.errors import bad_request_fields
from tests.integration.editor.conftest import Editor, struct

DELAY = {"seconds": 60}


async def rpc_error(coro: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro  # type: ignore[misc]
    return info.value


def chain(d: wf.WorkflowDefinition) -> list[str]:
    """Action ids along the main path (next / default edges)."""
    out, cur = [], d.start_action_id
    while cur:
        out.append(cur)
        a = d.actions[cur]
        cur = a.connection.next_action_id or a.default_connection.next_action_id
    return out


async def test_add_clone_move_delete_reconnect_and_subtree(editor: Editor) -> None:
    t = editor.tenant
    w = await editor.create()
    wid = w.definition.workflow_id
    a = await editor.add(wid, 1, "delay", DELAY)
    b = await editor.add(
        wid,
        2,
        "set_property",
        {"property": "firstname", "value": "x"},
        position=pb.Position(after_action_id=a.action_id),
    )
    # Adding at the start puts the new action before the old start.
    c = await editor.add(wid, 3, "delay", {"seconds": 120})
    assert chain(c.workflow.definition) == [c.action_id, a.action_id, b.action_id]
    assert c.workflow.draft_revision == 4

    branch = wf.Action(
        action_type="if_then",
        branches=[
            wf.Branch(
                branch_id="yes",
                label="Is lead",
                criteria=cr.FilterGroup(
                    filters=[
                        cr.PropertyFilter(
                            property="lifecyclestage",
                            operator="eq",
                            value=struct_pb2.Value(string_value="lead"),
                        )
                    ]
                ),
            )
        ],
    )
    br = await editor.stub.AddAction(
        pb.AddActionRequest(
            tenant_id=t,
            workflow_id=wid,
            action=branch,
            position=pb.Position(after_action_id=b.action_id),
        )
    )
    on_yes = await editor.add(
        wid, 0, "delay", DELAY, position=pb.Position(parent_action_id=br.action_id, branch_id="yes")
    )
    on_default = await editor.add(
        wid,
        0,
        "delay",
        DELAY,
        position=pb.Position(parent_action_id=br.action_id, branch_id="default"),
    )
    d = on_default.workflow.definition
    assert d.actions[br.action_id].branches[0].connection.next_action_id == on_yes.action_id
    assert d.actions[br.action_id].default_connection.next_action_id == on_default.action_id

    cl = await editor.stub.CloneAction(
        pb.CloneActionRequest(tenant_id=t, workflow_id=wid, action_id=b.action_id)
    )
    d = cl.workflow.definition
    assert d.actions[b.action_id].connection.next_action_id == cl.action_id
    assert d.actions[cl.action_id].fields == d.actions[b.action_id].fields
    assert d.actions[cl.action_id].connection.next_action_id == br.action_id

    # Move the clone onto the "yes" branch.
    mv = await editor.stub.MoveAction(
        pb.MoveActionRequest(
            tenant_id=t,
            workflow_id=wid,
            action_id=cl.action_id,
            position=pb.Position(parent_action_id=br.action_id, branch_id="yes"),
        )
    )
    d = mv.workflow.definition
    assert d.actions[b.action_id].connection.next_action_id == br.action_id
    assert d.actions[br.action_id].branches[0].connection.next_action_id == cl.action_id
    assert d.actions[cl.action_id].connection.next_action_id == on_yes.action_id
    err = await rpc_error(
        editor.stub.MoveAction(
            pb.MoveActionRequest(
                tenant_id=t,
                workflow_id=wid,
                action_id=br.action_id,
                position=pb.Position(after_action_id=cl.action_id),
            )
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT

    # Delete reconnecting: a's parent now points at b.
    dl = await editor.stub.DeleteAction(
        pb.DeleteActionRequest(tenant_id=t, workflow_id=wid, action_id=a.action_id)
    )
    assert list(dl.deleted_action_ids) == [a.action_id]
    assert chain(dl.workflow.definition)[:3] == [c.action_id, b.action_id, br.action_id]
    # Delete a branch action keeping the "yes" path.
    kb = await editor.stub.DeleteAction(
        pb.DeleteActionRequest(
            tenant_id=t, workflow_id=wid, action_id=br.action_id, keep_branch_id="yes"
        )
    )
    assert set(kb.deleted_action_ids) == {br.action_id, on_default.action_id}
    assert chain(kb.workflow.definition) == [
        c.action_id,
        b.action_id,
        cl.action_id,
        on_yes.action_id,
    ]
    # Delete with the subtree.
    st = await editor.stub.DeleteAction(
        pb.DeleteActionRequest(
            tenant_id=t, workflow_id=wid, action_id=b.action_id, delete_subtree=True
        )
    )
    assert set(st.deleted_action_ids) == {b.action_id, cl.action_id, on_yes.action_id}
    assert chain(st.workflow.definition) == [c.action_id]


async def test_update_action_comments_sources_triggers_settings(editor: Editor) -> None:
    t = editor.tenant
    w = await editor.create()
    wid = w.definition.workflow_id
    a = await editor.add(
        wid, 1, "set_property", {"property": "firstname", "value": "a"}, label="Set name"
    )
    up = await editor.stub.UpdateAction(
        pb.UpdateActionRequest(
            tenant_id=t,
            workflow_id=wid,
            action=wf.Action(
                action_id=a.action_id,
                action_type="set_property",
                label="Set first name",
                fields=struct({"property": "firstname", "value": "b"}),
            ),
        )
    )
    assert up.workflow.definition.actions[a.action_id].label == "Set first name"
    assert up.workflow.definition.actions[a.action_id].fields["value"] == "b"

    ac = await editor.stub.AddComment(
        pb.AddCommentRequest(
            tenant_id=t, workflow_id=wid, action_id=a.action_id, text="check the value", actor="dan"
        )
    )
    [cm] = ac.workflow.definition.actions[a.action_id].comments
    assert cm.comment_id == ac.comment_id and cm.author == "dan" and cm.created_at.seconds > 0
    uc = await editor.stub.UpdateComment(
        pb.UpdateCommentRequest(
            tenant_id=t,
            workflow_id=wid,
            action_id=a.action_id,
            comment_id=ac.comment_id,
            text="fixed",
        )
    )
    assert uc.workflow.definition.actions[a.action_id].comments[0].text == "fixed"
    dc = await editor.stub.DeleteComment(
        pb.DeleteCommentRequest(
            tenant_id=t, workflow_id=wid, action_id=a.action_id, comment_id=ac.comment_id
        )
    )
    assert not dc.workflow.definition.actions[a.action_id].comments

    src = wf.DataSource(name="Company", kind=wf.DATA_SOURCE_KIND_ASSOCIATED, object_type="company")
    ad = await editor.stub.AddDataSource(
        pb.AddDataSourceRequest(tenant_id=t, workflow_id=wid, data_source=src)
    )
    # A contact workflow starts with its default sources (primary company, deal, ticket).
    defaults = [s.source_id for s in w.definition.data_sources]
    assert defaults == ["company", "deal", "ticket"]
    assert all(s.is_default for s in w.definition.data_sources)
    assert [s.source_id for s in ad.workflow.definition.data_sources] == [*defaults, ad.source_id]
    src.source_id = ad.source_id
    src.association_label = "primary"
    ud = await editor.stub.UpdateDataSource(
        pb.UpdateDataSourceRequest(tenant_id=t, workflow_id=wid, data_source=src)
    )
    assert ud.workflow.definition.data_sources[-1].association_label == "primary"
    dd = await editor.stub.DeleteDataSource(
        pb.DeleteDataSourceRequest(tenant_id=t, workflow_id=wid, source_id=ad.source_id)
    )
    assert [s.source_id for s in dd.workflow.definition.data_sources] == defaults

    trig = tr.EnrollmentSettings(
        triggers=[
            tr.Trigger(
                event=tr.EventTrigger(
                    event_type=tr.EVENT_TYPE_PROPERTY_CHANGED, property="lifecyclestage"
                )
            )
        ]
    )
    ut = await editor.stub.UpdateTriggers(
        pb.UpdateTriggersRequest(tenant_id=t, workflow_id=wid, enrollment=trig)
    )
    assert ut.workflow.definition.enrollment.triggers[0].event.property == "lifecyclestage"
    us = await editor.stub.UpdateSettings(
        pb.UpdateSettingsRequest(
            tenant_id=t,
            workflow_id=wid,
            settings=wf.WorkflowSettings(
                time_zone="Europe/Copenhagen", blocked_dates=["2026-12-24"]
            ),
        )
    )
    assert us.workflow.definition.settings.time_zone == "Europe/Copenhagen"
    assert us.workflow.draft_revision == 11
    bad = await rpc_error(
        editor.stub.UpdateSettings(
            pb.UpdateSettingsRequest(
                tenant_id=t, workflow_id=wid, settings=wf.WorkflowSettings(time_zone="Mars/Base")
            )
        )
    )
    assert "settings.time_zone" in bad_request_fields(bad)


async def test_fifty_data_sources_at_most(editor: Editor) -> None:
    t = editor.tenant
    w = await editor.create()
    wid = w.definition.workflow_id
    d = w.definition
    del d.data_sources[:]  # replace the defaults with 50 of our own
    for i in range(50):
        d.data_sources.append(
            wf.DataSource(
                source_id=f"s{i}", kind=wf.DATA_SOURCE_KIND_ASSOCIATED, object_type="company"
            )
        )
    full = await editor.stub.UpdateWorkflow(pb.UpdateWorkflowRequest(tenant_id=t, definition=d))
    err = await rpc_error(
        editor.stub.AddDataSource(
            pb.AddDataSourceRequest(
                tenant_id=t,
                workflow_id=wid,
                data_source=wf.DataSource(kind=wf.DATA_SOURCE_KIND_ASSOCIATED, object_type="deal"),
            )
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "data_source" in bad_request_fields(
        err
    )
    assert (await editor.get(wid)).draft_revision == full.workflow.draft_revision


async def test_stale_revision_is_aborted_and_writes_nothing(editor: Editor) -> None:
    w = await editor.create()
    wid = w.definition.workflow_id
    await editor.add(wid, 1, "delay", DELAY)
    err = await rpc_error(editor.add(wid, 1, "delay", DELAY))
    assert err.code() == grpc.StatusCode.ABORTED
    got = await editor.get(wid)
    assert got.draft_revision == 2 and len(got.definition.actions) == 1
    # Racing edits based on the same revision: exactly one wins (enforced in the UPDATE).
    results = await asyncio.gather(
        *(editor.add(wid, 2, "delay", DELAY) for _ in range(6)), return_exceptions=True
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(wins) == 1 and all(e.code() == grpc.StatusCode.ABORTED for e in losses)
    assert len((await editor.get(wid)).definition.actions) == 2


async def test_undo_redo(editor: Editor) -> None:
    t = editor.tenant
    w = await editor.create()
    wid = w.definition.workflow_id
    a = await editor.add(wid, 1, "delay", DELAY)
    await editor.stub.RenameWorkflow(
        pb.RenameWorkflowRequest(tenant_id=t, workflow_id=wid, name="N")
    )
    u1 = await editor.stub.Undo(pb.UndoRequest(tenant_id=t, workflow_id=wid))
    assert u1.undone_operation == "RenameWorkflow" and u1.workflow.definition.name == ""
    u2 = await editor.stub.Undo(pb.UndoRequest(tenant_id=t, workflow_id=wid))
    assert u2.undone_operation == "AddAction" and not u2.workflow.definition.actions
    assert u2.workflow.redo_available == 2 and u2.workflow.undo_available == 0
    err = await rpc_error(editor.stub.Undo(pb.UndoRequest(tenant_id=t, workflow_id=wid)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    r1 = await editor.stub.Redo(pb.RedoRequest(tenant_id=t, workflow_id=wid))
    assert r1.redone_operation == "AddAction" and a.action_id in r1.workflow.definition.actions
    # A new edit empties the redo stack.
    await editor.add(wid, 0, "delay", DELAY)
    err = await rpc_error(editor.stub.Redo(pb.RedoRequest(tenant_id=t, workflow_id=wid)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "nothing to redo" in (
        err.details() or ""
    )
    log = await editor.stub.ListAuditEntries(
        pb.ListAuditEntriesRequest(tenant_id=t, workflow_id=wid)
    )
    assert [e.operation for e in log.entries].count("Undo") == 2


async def test_custom_code_changes_cannot_be_undone(editor: Editor) -> None:
    """custom_code is registered with undoable=False: its changes are not undoable/redoable."""
    t = editor.tenant
    w = await editor.create()
    wid = w.definition.workflow_id
    await editor.add(wid, 1, "delay", DELAY)
    cc = await editor.add(wid, 2, "custom_code", {"code": "def main(ctx):\n    return {}"})
    err = await rpc_error(editor.stub.Undo(pb.UndoRequest(tenant_id=t, workflow_id=wid)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "custom-code" in (err.details() or "") and "cannot be undone" in (err.details() or "")
    assert (await editor.get(wid)).draft_revision == 3
    # Editing the custom code is just as final; an unrelated later change can be undone.
    await editor.stub.DeleteAction(
        pb.DeleteActionRequest(tenant_id=t, workflow_id=wid, action_id=cc.action_id)
    )
    err = await rpc_error(editor.stub.Undo(pb.UndoRequest(tenant_id=t, workflow_id=wid)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    await editor.stub.RenameWorkflow(
        pb.RenameWorkflowRequest(tenant_id=t, workflow_id=wid, name="Later")
    )
    ok = await editor.stub.Undo(pb.UndoRequest(tenant_id=t, workflow_id=wid))
    assert ok.undone_operation == "RenameWorkflow"

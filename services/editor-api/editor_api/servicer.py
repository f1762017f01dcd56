"""EditorService over gRPC: proto in, pydantic inside, proto out. No logic of its own beyond
mapping; domain errors propagate to the server interceptor, which maps them to status codes."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from crmflow.api.editor.v1 import editor_service_pb2 as pb
from crmflow.api.editor.v1 import editor_service_pb2_grpc as pb_grpc
from crmflow.api.workflow.v1 import workflow_pb2 as wf_pb
from crmflow.errors import InvalidArgument, PermissionDenied
from crmflow.model.actions import Action
from crmflow.model.convert import from_proto
from crmflow.model.data_sources import DataSource
from crmflow.model.settings import WorkflowSettings
from crmflow.model.triggers import EnrollmentSettings
from crmflow.model.workflow import PublishedRevision, WorkflowDefinition, WorkflowStatus
from editor_api import edits, graph, templates
from editor_api import repository as repo
from editor_api.documents import dump
from editor_api.lifecycle import Lifecycle
from editor_api.minimap import edges, layout
from editor_api.proto_cache import definition_proto
from editor_api.service import EditorCore, WorkflowView
from editor_api.servicer_catalogue import CatalogueRpcs
from editor_api.tenant_plans import TenantPlans

Ctx: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


def workflow_proto(view: WorkflowView, *, summary_only: bool = False) -> pb.Workflow:
    row = view.row
    defn = definition_proto(row.draft, with_actions=not summary_only)
    out = pb.Workflow(
        definition=defn,
        status=wf_pb.WorkflowStatus.Value(str(row.status)),
        draft_revision=row.draft_revision,
        published_revision=row.published_revision,
        has_unpublished_changes=row.published_draft_revision != row.draft_revision,
        handoff_pending=view.handoff is not None,
        handoff_error=view.handoff.last_error if view.handoff else "",
        undo_available=view.undo_available,
        redo_available=view.redo_available,
        created_by=row.created_by,
    )
    out.created_at.FromDatetime(row.created_at)
    out.updated_at.FromDatetime(row.updated_at)
    return out


def revision_proto(rev: PublishedRevision) -> wf_pb.PublishedRevision:
    out = wf_pb.PublishedRevision(
        tenant_id=rev.tenant_id,
        workflow_id=rev.workflow_id,
        revision=rev.revision,
        definition=definition_proto(dump(rev.definition)),
    )
    out.published_at.FromDatetime(rev.published_at)
    return out


def _required(req: Any, field: str) -> None:
    if not getattr(req, field):
        raise InvalidArgument.field(field, "required")


def _position(req: Any) -> edits.PositionArg | None:
    if not req.HasField("position"):
        return None
    p = req.position
    return edits.PositionArg(p.after_action_id, p.parent_action_id, p.branch_id)


def _action(msg: wf_pb.Action, *, generate_id: bool, taken: set[str] | None = None) -> Action:
    if generate_id and not msg.action_id:
        msg = wf_pb.Action.FromString(msg.SerializeToString())
        msg.action_id = graph.new_id("a_", taken or set())
    return from_proto(msg, Action, field="action")


class EditorServicer(CatalogueRpcs, pb_grpc.EditorServiceServicer):
    def __init__(self, core: EditorCore, lifecycle: Lifecycle, plans: TenantPlans) -> None:
        self.core = core
        self.life = lifecycle
        self.plans = plans

    async def _edit(self, req: Any, operation: str, fn: edits.Edit) -> tuple[pb.Workflow, Any]:
        view, result = await self.core.edit(
            req.tenant_id,
            req.workflow_id,
            expected=req.expected_draft_revision,
            actor=req.actor,
            operation=operation,
            fn=fn,
        )
        return workflow_proto(view), result

    # -- workflows -----------------------------------------------------------------------
    async def CreateWorkflow(self, req: pb.CreateWorkflowRequest, ctx: Ctx) -> Any:
        if req.template_id:
            d = req.definition
            if d.object_type and d.object_type != templates.get(req.template_id).object_type:
                raise InvalidArgument.field("definition.object_type", "differs from the template's")
            over = WorkflowDefinition(
                object_type=d.object_type or "x",
                name=d.name,
                description=d.description,
                folder=d.folder,
                workflow_id=d.workflow_id,
            )
            defn = templates.instantiate(req.template_id, over)
            if req.tenant_id:
                missing = templates.get(req.template_id).missing_features(
                    await self.plans.get(req.tenant_id), self.core.registry
                )
                if missing:
                    raise PermissionDenied(
                        f"template {req.template_id} needs {', '.join(missing)}, which the "
                        "tenant's plan does not include"
                    )
            source = f"from template {req.template_id}"
        else:
            if not req.HasField("definition"):
                raise InvalidArgument.field("definition", "required (or template_id)")
            defn = from_proto(req.definition, WorkflowDefinition, field="definition")
            source = "from scratch"
        view = await self.core.create(
            req.tenant_id, defn, actor=req.actor, source=source, from_template=bool(req.template_id)
        )
        return pb.CreateWorkflowResponse(workflow=workflow_proto(view))

    async def GetWorkflow(self, req: pb.GetWorkflowRequest, ctx: Ctx) -> Any:
        return pb.GetWorkflowResponse(
            workflow=workflow_proto(await self.core.get(req.tenant_id, req.workflow_id))
        )

    async def ListWorkflows(self, req: pb.ListWorkflowsRequest, ctx: Ctx) -> Any:
        if not req.tenant_id:
            raise InvalidArgument.field("tenant_id", "required")
        if req.page_size < 0 or req.page_size > 500:
            raise InvalidArgument.field("page_size", "between 0 and 500")
        status = "" if req.status == 0 else wf_pb.WorkflowStatus.Name(req.status)
        async with self.core.sessions() as s:
            rows, nxt = await repo.list_workflows(
                s,
                tenant_id=req.tenant_id,
                object_type=req.object_type,
                status=status,
                folder=req.folder,
                text=req.text,
                page_size=req.page_size or 50,
                page_token=req.page_token,
                exclude_status="" if req.include_archived else WorkflowStatus.ARCHIVED,
            )
        return pb.ListWorkflowsResponse(
            workflows=[
                workflow_proto(WorkflowView(r), summary_only=req.summary_only) for r in rows
            ],
            next_page_token=nxt,
        )

    async def UpdateWorkflow(self, req: pb.UpdateWorkflowRequest, ctx: Ctx) -> Any:
        defn = from_proto(req.definition, WorkflowDefinition, field="definition")
        view = await self.core.replace(
            req.tenant_id, defn, expected=req.expected_draft_revision, actor=req.actor
        )
        return pb.UpdateWorkflowResponse(workflow=workflow_proto(view))

    async def RenameWorkflow(self, req: pb.RenameWorkflowRequest, ctx: Ctx) -> Any:
        fn = edits.rename(
            req.name,
            req.description if req.HasField("description") else None,
            req.folder if req.HasField("folder") else None,
        )
        wf, _ = await self._edit(req, "RenameWorkflow", fn)
        return pb.RenameWorkflowResponse(workflow=wf)

    async def ArchiveWorkflow(self, req: pb.ArchiveWorkflowRequest, ctx: Ctx) -> Any:
        view = await self.life.archive(req.tenant_id, req.workflow_id, actor=req.actor)
        return pb.ArchiveWorkflowResponse(workflow=workflow_proto(view))

    async def RestoreWorkflow(self, req: pb.RestoreWorkflowRequest, ctx: Ctx) -> Any:
        view = await self.life.restore(req.tenant_id, req.workflow_id, actor=req.actor)
        return pb.RestoreWorkflowResponse(workflow=workflow_proto(view))

    async def DeleteWorkflow(self, req: pb.DeleteWorkflowRequest, ctx: Ctx) -> Any:
        await self.life.delete(req.tenant_id, req.workflow_id, actor=req.actor)
        return pb.DeleteWorkflowResponse()

    # -- granular edits --------------------------------------------------------------------
    async def AddAction(self, req: pb.AddActionRequest, ctx: Ctx) -> Any:
        action = _action(req.action, generate_id=True)
        wf, aid = await self._edit(
            req, "AddAction", edits.add_action(self.core.registry, action, _position(req))
        )
        return pb.AddActionResponse(workflow=wf, action_id=aid)

    async def UpdateAction(self, req: pb.UpdateActionRequest, ctx: Ctx) -> Any:
        action = _action(req.action, generate_id=False)
        wf, _ = await self._edit(
            req, "UpdateAction", edits.update_action(self.core.registry, action)
        )
        return pb.UpdateActionResponse(workflow=wf)

    async def CloneAction(self, req: pb.CloneActionRequest, ctx: Ctx) -> Any:
        if not req.action_id:
            raise InvalidArgument.field("action_id", "required")
        fn = edits.clone_action(req.action_id, _position(req), self.core.registry)
        wf, aid = await self._edit(req, "CloneAction", fn)
        return pb.CloneActionResponse(workflow=wf, action_id=aid)

    async def MoveAction(self, req: pb.MoveActionRequest, ctx: Ctx) -> Any:
        if not req.action_id:
            raise InvalidArgument.field("action_id", "required")
        pos = _position(req) or edits.PositionArg()
        wf, _ = await self._edit(req, "MoveAction", edits.move_action(req.action_id, pos))
        return pb.MoveActionResponse(workflow=wf)

    async def DeleteAction(self, req: pb.DeleteActionRequest, ctx: Ctx) -> Any:
        if not req.action_id:
            raise InvalidArgument.field("action_id", "required")
        fn = edits.delete_action(req.action_id, req.delete_subtree, req.keep_branch_id)
        wf, removed = await self._edit(req, "DeleteAction", fn)
        return pb.DeleteActionResponse(workflow=wf, deleted_action_ids=removed)

    async def AddComment(self, req: pb.AddCommentRequest, ctx: Ctx) -> Any:
        _required(req, "action_id")
        fn = edits.add_comment(req.action_id, req.text, req.actor, self.core.clock())
        wf, cid = await self._edit(req, "AddComment", fn)
        return pb.AddCommentResponse(workflow=wf, comment_id=cid)

    async def UpdateComment(self, req: pb.UpdateCommentRequest, ctx: Ctx) -> Any:
        _required(req, "action_id")
        _required(req, "comment_id")
        wf, _ = await self._edit(
            req, "UpdateComment", edits.update_comment(req.action_id, req.comment_id, req.text)
        )
        return pb.UpdateCommentResponse(workflow=wf)

    async def DeleteComment(self, req: pb.DeleteCommentRequest, ctx: Ctx) -> Any:
        _required(req, "action_id")
        _required(req, "comment_id")
        wf, _ = await self._edit(
            req, "DeleteComment", edits.delete_comment(req.action_id, req.comment_id)
        )
        return pb.DeleteCommentResponse(workflow=wf)

    async def AddDataSource(self, req: pb.AddDataSourceRequest, ctx: Ctx) -> Any:
        msg = req.data_source
        if not msg.source_id:
            msg = wf_pb.DataSource.FromString(msg.SerializeToString())
            msg.source_id = graph.new_id("ds_", set())
        source = from_proto(msg, DataSource, field="data_source")
        wf, sid = await self._edit(req, "AddDataSource", edits.add_data_source(source))
        return pb.AddDataSourceResponse(workflow=wf, source_id=sid)

    async def UpdateDataSource(self, req: pb.UpdateDataSourceRequest, ctx: Ctx) -> Any:
        source = from_proto(req.data_source, DataSource, field="data_source")
        wf, _ = await self._edit(req, "UpdateDataSource", edits.update_data_source(source))
        return pb.UpdateDataSourceResponse(workflow=wf)

    async def DeleteDataSource(self, req: pb.DeleteDataSourceRequest, ctx: Ctx) -> Any:
        if not req.source_id:
            raise InvalidArgument.field("source_id", "required")
        wf, _ = await self._edit(req, "DeleteDataSource", edits.delete_data_source(req.source_id))
        return pb.DeleteDataSourceResponse(workflow=wf)

    async def UpdateTriggers(self, req: pb.UpdateTriggersRequest, ctx: Ctx) -> Any:
        enrollment = from_proto(req.enrollment, EnrollmentSettings, field="enrollment")
        wf, _ = await self._edit(req, "UpdateTriggers", edits.update_triggers(enrollment))
        return pb.UpdateTriggersResponse(workflow=wf)

    async def UpdateSettings(self, req: pb.UpdateSettingsRequest, ctx: Ctx) -> Any:
        settings = from_proto(req.settings, WorkflowSettings, field="settings")
        wf, _ = await self._edit(req, "UpdateSettings", edits.update_settings(settings))
        return pb.UpdateSettingsResponse(workflow=wf)

    async def Undo(self, req: pb.UndoRequest, ctx: Ctx) -> Any:
        view, op = await self.core.step(
            req.tenant_id,
            req.workflow_id,
            expected=req.expected_draft_revision,
            actor=req.actor,
            redo=False,
        )
        return pb.UndoResponse(workflow=workflow_proto(view), undone_operation=op)

    async def Redo(self, req: pb.RedoRequest, ctx: Ctx) -> Any:
        view, op = await self.core.step(
            req.tenant_id,
            req.workflow_id,
            expected=req.expected_draft_revision,
            actor=req.actor,
            redo=True,
        )
        return pb.RedoResponse(workflow=workflow_proto(view), redone_operation=op)

    # -- minimap / validation -----------------------------------------------------------
    async def ValidateWorkflow(self, req: pb.ValidateWorkflowRequest, ctx: Ctx) -> Any:
        row, defn, issues, checked = await self.core.validate(req.tenant_id, req.workflow_id)
        flagged = {i.action_id for i in issues}
        nodes = layout(defn, self.core.registry)
        return pb.ValidateWorkflowResponse(
            nodes=[
                pb.MinimapNode(
                    action_id=n.action_id,
                    action_type=n.action_type,
                    label=n.label,
                    summary=n.summary,
                    x=n.x,
                    y=n.y,
                    placeholder=n.placeholder,
                    has_issues=n.action_id in flagged,
                    comment_count=n.comment_count,
                )
                for n in nodes
            ],
            edges=[
                pb.MinimapEdge(
                    from_action_id=e.from_action_id,
                    to_action_id=e.to_action_id,
                    label=e.label,
                    branch_id=e.branch_id,
                    edge_type=wf_pb.EdgeType.Value(str(e.edge_type)),
                )
                for e in edges(defn)
            ],
            issues=[
                pb.ValidationIssue(
                    action_id=i.action_id, code=i.code, field=i.field, message=i.message
                )
                for i in issues
            ],
            publishable=not issues,
            draft_revision=row.draft_revision,
            properties_checked=checked,
        )

    # -- review and publish ----------------------------------------------------------------
    async def PreviewEnrollment(self, req: pb.PreviewEnrollmentRequest, ctx: Ctx) -> Any:
        count, ids = await self.life.preview(req.tenant_id, req.workflow_id, req.sample_size or 10)
        return pb.PreviewEnrollmentResponse(estimated_count=count, sample_record_ids=ids)

    async def SaveEnrollmentPreviewAsList(
        self, req: pb.SaveEnrollmentPreviewAsListRequest, ctx: Ctx
    ) -> Any:
        list_id = await self.life.save_as_list(req.tenant_id, req.workflow_id, req.list_name)
        return pb.SaveEnrollmentPreviewAsListResponse(list_id=list_id)

    async def PublishWorkflow(self, req: pb.PublishWorkflowRequest, ctx: Ctx) -> Any:
        view, rev = await self.life.publish(
            req.tenant_id,
            req.workflow_id,
            expected=req.expected_draft_revision,
            enroll_existing=req.enroll_existing,
            actor=req.actor,
        )
        return pb.PublishWorkflowResponse(
            workflow=workflow_proto(view), revision=revision_proto(rev)
        )

    async def TurnOffWorkflow(self, req: pb.TurnOffWorkflowRequest, ctx: Ctx) -> Any:
        view = await self.life.turn_off(
            req.tenant_id, req.workflow_id, actor=req.actor, unenroll_existing=req.unenroll_existing
        )
        return pb.TurnOffWorkflowResponse(workflow=workflow_proto(view))

    async def TurnOnWorkflow(self, req: pb.TurnOnWorkflowRequest, ctx: Ctx) -> Any:
        view = await self.life.turn_on(
            req.tenant_id, req.workflow_id, actor=req.actor, enroll_existing=req.enroll_existing
        )
        return pb.TurnOnWorkflowResponse(workflow=workflow_proto(view))

    async def ListRevisions(self, req: pb.ListRevisionsRequest, ctx: Ctx) -> Any:
        revs = await self.life.revisions(req.tenant_id, req.workflow_id)
        return pb.ListRevisionsResponse(revisions=[revision_proto(r) for r in revs])

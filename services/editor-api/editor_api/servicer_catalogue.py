"""EditorService rpcs that read catalogues and account data: action types, filter operators,
templates, tenant plans and the audit log (mixed into ``EditorServicer``)."""

from __future__ import annotations

import json
from typing import Any, TypeAlias

import grpc

from crmflow.api.editor.v1 import editor_service_pb2 as pb
from crmflow.api.workflow.v1 import workflow_pb2 as wf_pb
from crmflow.criteria import OPERATORS
from crmflow.errors import InvalidArgument
from crmflow.model.convert import to_proto
from editor_api import templates
from editor_api.plans import Plan
from editor_api.service import EditorCore
from editor_api.tenant_plans import TenantPlans

Ctx: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class CatalogueRpcs:
    core: EditorCore
    plans: TenantPlans

    # -- catalogue -------------------------------------------------------------------------
    async def ListActionTypes(self, req: pb.ListActionTypesRequest, ctx: Ctx) -> Any:
        plan = await self.plans.get(req.tenant_id) if req.tenant_id else Plan(tenant_id="")
        reg = self.core.registry
        out = []
        for spec in reg.all():
            if req.category and spec.category != req.category:
                continue
            why = plan.action_lock(spec.action_type, reg, spec.version)
            out.append(
                pb.ActionType(
                    action_type=spec.action_type,
                    version=spec.version,
                    label=spec.label,
                    category=spec.category,
                    control_flow=spec.control_flow,
                    undoable=spec.undoable,
                    plan_feature=spec.plan_feature,
                    locked=bool(why),
                    locked_reason=why,
                    fields_json_schema=json.dumps(spec.fields_model.model_json_schema()),
                    token_fields=list(spec.token_fields),
                )
            )
        return pb.ListActionTypesResponse(action_types=out)

    async def ListFilterOperators(self, req: pb.ListFilterOperatorsRequest, ctx: Ctx) -> Any:
        ops = [
            pb.FilterOperator(
                key=o.key, label=o.label, operand=o.operand, property_types=list(o.property_types)
            )
            for o in sorted(OPERATORS.values(), key=lambda o: o.key)
            if not req.property_type or req.property_type in o.property_types
        ]
        return pb.ListFilterOperatorsResponse(operators=ops)

    # -- templates -------------------------------------------------------------------------
    @staticmethod
    def _summary(t: templates.Template) -> pb.TemplateSummary:
        return pb.TemplateSummary(
            template_id=t.template_id,
            name=t.name,
            category=t.category,
            object_type=t.object_type,
            description=t.description,
            keywords=t.keywords,
            required_features=t.required_features,
        )

    async def ListTemplates(self, req: pb.ListTemplatesRequest, ctx: Ctx) -> Any:
        found = templates.search(
            category=req.category, object_type=req.object_type, query=req.query
        )
        return pb.ListTemplatesResponse(
            templates=[self._summary(t) for t in found], categories=templates.categories()
        )

    async def GetTemplate(self, req: pb.GetTemplateRequest, ctx: Ctx) -> Any:
        if not req.template_id:
            raise InvalidArgument.field("template_id", "required")
        t = templates.get(req.template_id)
        plan = await self.plans.get(req.tenant_id) if req.tenant_id else Plan(tenant_id="")
        missing = t.missing_features(plan, self.core.registry)
        return pb.GetTemplateResponse(
            template=self._summary(t),
            purpose=t.purpose,
            actions=[
                pb.TemplateAction(
                    action_id=a.action_id,
                    action_type=a.action_type,
                    label=a.label,
                    placeholder=a.placeholder,
                )
                for a in t.definition.actions.values()
            ],
            compatible_with_plan=not missing,
            missing_features=missing,
            definition=to_proto(t.definition, wf_pb.WorkflowDefinition),
        )

    # -- audit and plans -------------------------------------------------------------------
    async def ListAuditEntries(self, req: pb.ListAuditEntriesRequest, ctx: Ctx) -> Any:
        entries, nxt = await self.core.audit_entries(
            req.tenant_id, req.workflow_id, req.page_size, req.page_token
        )
        out = []
        for e in entries:
            m = pb.AuditEntry(
                sequence=e.pk or 0,
                workflow_id=e.workflow_id,
                actor=e.actor,
                operation=e.operation,
                summary=e.summary,
                draft_revision=e.draft_revision,
            )
            m.at.FromDatetime(e.at)
            out.append(m)
        return pb.ListAuditEntriesResponse(entries=out, next_page_token=nxt)

    async def GetTenantPlan(self, req: pb.GetTenantPlanRequest, ctx: Ctx) -> Any:
        return pb.GetTenantPlanResponse(
            plan=self.plans.to_proto(await self.plans.get(req.tenant_id))
        )

    async def SetTenantPlan(self, req: pb.SetTenantPlanRequest, ctx: Ctx) -> Any:
        plan = await self.plans.set(req.tenant_id, req.plan)
        return pb.SetTenantPlanResponse(plan=self.plans.to_proto(plan))

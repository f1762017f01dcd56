"""Reading and setting a tenant's plan entitlements (administrative rpcs)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from crmflow.api.editor.v1 import editor_service_pb2 as pb
from crmflow.errors import InvalidArgument
from editor_api import repository as repo
from editor_api.db import TenantPlanRow
from editor_api.plans import Plan

TRIGGER_KINDS = frozenset({"manual", "schedule", "event", "criteria"})


class TenantPlans:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def get(self, tenant_id: str) -> Plan:
        if not tenant_id:
            raise InvalidArgument.field("tenant_id", "required")
        async with self.sessions() as s:
            return Plan.from_row(tenant_id, await repo.get_plan(s, tenant_id=tenant_id))

    async def set(self, tenant_id: str, msg: pb.TenantPlan) -> Plan:
        if not tenant_id:
            raise InvalidArgument.field("tenant_id", "required")
        if msg.tenant_id and msg.tenant_id != tenant_id:
            raise InvalidArgument.field("plan.tenant_id", "does not match tenant_id")
        if len(msg.plan_name) > 128:
            raise InvalidArgument.field("plan.plan_name", "at most 128 characters")
        if msg.max_workflows < 0:
            raise InvalidArgument.field("plan.max_workflows", "must not be negative")
        bad = set(msg.locked_trigger_kinds) - TRIGGER_KINDS
        if bad:
            raise InvalidArgument.field(
                "plan.locked_trigger_kinds",
                f"unknown kinds {sorted(bad)}; use {sorted(TRIGGER_KINDS)}",
            )
        row = TenantPlanRow(
            tenant_id=tenant_id,
            plan_name=msg.plan_name,
            features=repo.dumps_list(list(msg.features)),
            locked_action_types=repo.dumps_list(list(msg.locked_action_types)),
            locked_trigger_kinds=repo.dumps_list(list(msg.locked_trigger_kinds)),
            max_workflows=msg.max_workflows,
        )
        async with self.sessions() as s, s.begin():
            await repo.put_plan(s, plan=row)
        return Plan.from_row(tenant_id, row)

    @staticmethod
    def to_proto(plan: Plan) -> pb.TenantPlan:
        return pb.TenantPlan(
            tenant_id=plan.tenant_id,
            plan_name=plan.plan_name,
            features=sorted(plan.features),
            locked_action_types=sorted(plan.locked_action_types),
            locked_trigger_kinds=sorted(plan.locked_trigger_kinds),
            max_workflows=plan.max_workflows,
            unrestricted=plan.unrestricted,
        )

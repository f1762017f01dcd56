"""Plan entitlements: which action types and trigger kinds a tenant may use, and how many
workflows it may have. No plan row means unrestricted (a single-tenant install is never
locked out of its own workflows)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from crmflow.actions.registry import ActionRegistry
from crmflow.errors import FailedPrecondition, PermissionDenied, PreconditionViolation
from crmflow.model.triggers import EnrollmentSettings, Trigger
from crmflow.model.workflow import WorkflowDefinition
from editor_api.db import TenantPlanRow


@dataclass(frozen=True)
class Plan:
    tenant_id: str
    plan_name: str = ""
    features: frozenset[str] = field(default_factory=frozenset)
    locked_action_types: frozenset[str] = field(default_factory=frozenset)
    locked_trigger_kinds: frozenset[str] = field(default_factory=frozenset)
    max_workflows: int = 0
    unrestricted: bool = True

    @classmethod
    def from_row(cls, tenant_id: str, row: TenantPlanRow | None) -> Plan:
        if row is None:
            return cls(tenant_id=tenant_id)
        return cls(
            tenant_id=tenant_id,
            plan_name=row.plan_name,
            features=frozenset(json.loads(row.features)),
            locked_action_types=frozenset(json.loads(row.locked_action_types)),
            locked_trigger_kinds=frozenset(json.loads(row.locked_trigger_kinds)),
            max_workflows=row.max_workflows,
            unrestricted=False,
        )

    def action_lock(self, action_type: str, registry: ActionRegistry, version: int = 1) -> str:
        """Why ``action_type`` is locked for this tenant ("" = it is not)."""
        if self.unrestricted:
            return ""
        if action_type in self.locked_action_types:
            return (
                f"action {action_type!r} is not included in the {self.plan_name or 'current'} plan"
            )
        if (action_type, version) in registry:
            feature = registry.get(action_type, version).plan_feature
            if feature and feature not in self.features:
                return f"action {action_type!r} needs the plan feature {feature!r}"
        return ""

    def trigger_lock(self, trigger: Trigger) -> str:
        if self.unrestricted or trigger.kind not in self.locked_trigger_kinds:
            return ""
        return f"{trigger.kind} triggers are not included in the {self.plan_name or 'current'} plan"


def trigger_locks(plan: Plan, enrollment: EnrollmentSettings) -> list[tuple[str, str]]:
    """(field path, reason) for every locked trigger."""
    out = []
    for name, triggers in (
        ("enrollment.triggers", enrollment.triggers),
        ("enrollment.reenrollment.triggers", enrollment.reenrollment.triggers),
        ("enrollment.unenrollment_triggers", enrollment.unenrollment_triggers),
    ):
        for i, t in enumerate(triggers):
            why = plan.trigger_lock(t)
            if why:
                out.append((f"{name}[{i}]", why))
    return out


def enforce_triggers(plan: Plan, enrollment: EnrollmentSettings) -> None:
    locks = trigger_locks(plan, enrollment)
    if locks:
        raise PermissionDenied(f"{locks[0][0]}: {locks[0][1]} (upgrade the plan to use it)")


def enforce_action(
    plan: Plan, registry: ActionRegistry, action_type: str, version: int = 1
) -> None:
    why = plan.action_lock(action_type, registry, version)
    if why:
        raise PermissionDenied(f"{why} (upgrade the plan to use it)")


def enforce_definition(plan: Plan, registry: ActionRegistry, defn: WorkflowDefinition) -> None:
    enforce_triggers(plan, defn.enrollment)
    for a in defn.actions.values():
        enforce_action(plan, registry, a.action_type, a.type_version)


def enforce_workflow_count(plan: Plan, current: int) -> None:
    if plan.max_workflows and current >= plan.max_workflows:
        raise FailedPrecondition(
            f"the {plan.plan_name or 'current'} plan allows {plan.max_workflows} workflows and "
            f"{current} exist; archive or delete one, or upgrade the plan",
            [PreconditionViolation("PLAN_LIMIT", "max_workflows", f"limit {plan.max_workflows}")],
        )

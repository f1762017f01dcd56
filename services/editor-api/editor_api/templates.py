"""The template library: JSON files in ``templates/``, one per template, loaded once.

A template is a partial workflow: triggers, actions (account-specific details left as
placeholders), plus catalogue metadata (category, purpose, keywords, required plan features).
"Use template" copies its definition into a new draft; nothing links the two afterwards.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from pydantic import Field

from crmflow.actions.registry import ActionRegistry
from crmflow.errors import NotFound
from crmflow.model.base import Model
from crmflow.model.workflow import WorkflowDefinition
from editor_api.plans import Plan

TEMPLATE_DIR = Path(__file__).parent / "templates"


class Template(Model):
    template_id: str
    name: str
    category: str
    object_type: str
    description: str
    purpose: str
    keywords: list[str] = Field(default_factory=list)
    required_features: list[str] = Field(default_factory=list)
    definition: WorkflowDefinition

    def matches(self, query: str) -> bool:
        words = query.lower().split()
        hay = " ".join(
            [self.name, self.description, self.purpose, self.category, " ".join(self.keywords)]
        ).lower()
        return all(w in hay for w in words)

    def missing_features(self, plan: Plan, registry: ActionRegistry) -> list[str]:
        if plan.unrestricted:
            return []
        missing = {f for f in self.required_features if f not in plan.features}
        for a in self.definition.actions.values():
            why = plan.action_lock(a.action_type, registry, a.type_version)
            if why:
                missing.add(f"action:{a.action_type}")
        for t in self.definition.enrollment.triggers:
            if plan.trigger_lock(t):
                missing.add(f"trigger:{t.kind}")
        return sorted(missing)


@cache
def library() -> dict[str, Template]:
    out: dict[str, Template] = {}
    for path in sorted(TEMPLATE_DIR.glob("*.json")):
        t = Template.model_validate(json.loads(path.read_text()))
        if t.template_id in out:
            raise ValueError(f"template id {t.template_id} used twice")
        out[t.template_id] = t
    return out


def get(template_id: str) -> Template:
    try:
        return library()[template_id]
    except KeyError:
        raise NotFound("template", template_id) from None


def search(*, category: str = "", object_type: str = "", query: str = "") -> list[Template]:
    return [
        t
        for t in library().values()
        if (not category or t.category == category)
        and (not object_type or t.object_type == object_type)
        and (not query or t.matches(query))
    ]


def categories() -> list[str]:
    return sorted({t.category for t in library().values()})


def instantiate(template_id: str, overrides: WorkflowDefinition | None) -> WorkflowDefinition:
    t = get(template_id)
    defn = t.definition.model_copy(deep=True)
    defn.name = (overrides.name if overrides and overrides.name else "") or t.name
    if overrides:
        defn.description = overrides.description or defn.description or t.description
        defn.folder = overrides.folder
        defn.workflow_id = overrides.workflow_id
    else:
        defn.description = defn.description or t.description
    return defn

"""Drafts as documents: canonical JSON in, pydantic models out, and a cache of parsed drafts."""

from __future__ import annotations

from crmflow.model.workflow import PublishedRevision, WorkflowDefinition
from editor_api.db import PublishedRevisionRow


def dump(defn: WorkflowDefinition) -> str:
    """Canonical JSON of a draft (pydantic-core, compact): equal drafts give equal strings."""
    return defn.model_dump_json(exclude_none=True)


def parse(draft: str) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate_json(draft)


def revision_model(r: PublishedRevisionRow) -> PublishedRevision:
    return PublishedRevision(
        tenant_id=r.tenant_id,
        workflow_id=r.workflow_id,
        revision=r.revision,
        published_at=r.published_at,
        definition=parse(r.definition),
    )


class ModelCache:
    """Parsed drafts keyed by their exact JSON text (parsing 500 actions costs ~5 ms).

    ``take`` hands a model out exclusively (the caller may mutate it), so concurrent requests
    never share one; the caller ``put``s back the model for the text it leaves behind. Bounded:
    a few recently edited workflows, not a second copy of the database.
    """

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self.models: dict[str, WorkflowDefinition] = {}

    def take(self, draft: str) -> WorkflowDefinition:
        got = self.models.pop(draft, None)
        return got if got is not None else parse(draft)

    def put(self, draft: str, model: WorkflowDefinition) -> None:
        self.models[draft] = model
        while len(self.models) > self.size:
            self.models.pop(next(iter(self.models)))

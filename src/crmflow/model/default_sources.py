"""Data sources added automatically to contact-, company-, deal- and ticket-based workflows.

editor-api applies ``with_defaults`` when a workflow is created (from scratch or a template);
the datasource-resolver lists them (ListDefaultDataSources) and resolves the "primary" label
leniently. The ids below are what templates reference, e.g. ``{{ sources.company.domain }}`` in
a contact workflow. Pure data, so it lives in the core model both services share.
"""

from __future__ import annotations

from crmflow.model.data_sources import MAX_DATA_SOURCES, DataSource, DataSourceKind, ReduceRule
from crmflow.model.workflow import WorkflowDefinition

# Association label of "the" company of a contact/deal/ticket.
PRIMARY_LABEL = "primary"

_RECENT = ReduceRule.MOST_RECENTLY_UPDATED
_NEWEST = ReduceRule.MOST_RECENTLY_CREATED


def _assoc(
    source_id: str, name: str, object_type: str, reduce: ReduceRule, label: str = ""
) -> DataSource:
    return DataSource(
        source_id=source_id,
        name=name,
        kind=DataSourceKind.ASSOCIATED,
        object_type=object_type,
        association_label=label,
        reduce=reduce,
        is_default=True,
    )


_DEFAULTS: dict[str, tuple[tuple[str, str, str, ReduceRule, str], ...]] = {
    "contact": (
        ("company", "Primary associated company", "company", _RECENT, PRIMARY_LABEL),
        ("deal", "Most recently created associated deal", "deal", _NEWEST, ""),
        ("ticket", "Most recently created associated ticket", "ticket", _NEWEST, ""),
    ),
    "company": (
        ("contact", "Most recently created associated contact", "contact", _NEWEST, ""),
        ("deal", "Most recently created associated deal", "deal", _NEWEST, ""),
    ),
    "deal": (
        ("company", "Primary associated company", "company", _RECENT, PRIMARY_LABEL),
        ("contact", "Most recently updated associated contact", "contact", _RECENT, ""),
    ),
    "ticket": (
        ("company", "Primary associated company", "company", _RECENT, PRIMARY_LABEL),
        ("contact", "Most recently updated associated contact", "contact", _RECENT, ""),
    ),
}


def default_data_sources(object_type: str) -> list[DataSource]:
    """The default sources of a workflow of ``object_type`` (none for other object types)."""
    return [
        _assoc(sid, name, ot, red, label)
        for sid, name, ot, red, label in _DEFAULTS.get(object_type, ())
    ]


def with_defaults(definition: WorkflowDefinition) -> WorkflowDefinition:
    """The definition with any missing default source added (ids already taken are kept)."""
    taken = {s.source_id for s in definition.data_sources}
    extra = [s for s in default_data_sources(definition.object_type) if s.source_id not in taken]
    room = MAX_DATA_SOURCES - len(definition.data_sources)
    if not extra or room <= 0:
        return definition
    return definition.model_copy(update={"data_sources": [*definition.data_sources, *extra[:room]]})

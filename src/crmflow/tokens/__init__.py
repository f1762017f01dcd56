"""Personalization tokens: a logic-less template language for action fields.

``{{ contact.firstname | default: "there" }}``, ``{{ record.<prop> }}`` (``record`` and the
workflow's object type name are the same record), ``{{ sources.<id>.<prop> }}``,
``{{ actions.<id>.outputs.<name> }}``, ``{{ event.<prop> }}``.

Shared by editor-api (``references`` for validation), datasource-resolver (rendering) and the
executor. See ``syntax`` for the grammar and bounds, ``filters`` for the filter set, ``render``
for escaping modes and what missing data becomes.
"""

from crmflow.tokens.filters import FILTERS, MISSING
from crmflow.tokens.references import References, references, references_in
from crmflow.tokens.render import (
    MAX_OUTPUT_CHARS,
    UNKNOWN_KEY,
    Escape,
    RenderResult,
    build_context,
    evaluate,
    is_unknown,
    lookup,
    render,
    render_template,
    resolve_value,
    to_text,
    unknown,
)
from crmflow.tokens.syntax import (
    MAX_TEMPLATE_CHARS,
    MAX_TOKENS,
    Filter,
    Template,
    TemplateError,
    Token,
    has_tokens,
    parse,
)

__all__ = [
    "FILTERS",
    "MAX_OUTPUT_CHARS",
    "MAX_TEMPLATE_CHARS",
    "MAX_TOKENS",
    "MISSING",
    "UNKNOWN_KEY",
    "Escape",
    "Filter",
    "References",
    "RenderResult",
    "Template",
    "TemplateError",
    "Token",
    "build_context",
    "evaluate",
    "has_tokens",
    "is_unknown",
    "lookup",
    "parse",
    "references",
    "references_in",
    "render",
    "render_template",
    "resolve_value",
    "to_text",
    "unknown",
]

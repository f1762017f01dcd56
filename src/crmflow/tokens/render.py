"""Rendering parsed templates against plain data.

Lookups walk ``dict`` keys and ``list`` indices only (exact types, not subclasses or objects),
so no attribute, method or dunder of any Python object is ever reachable. Values are turned into
text by ``to_text`` for a fixed set of plain types; anything else is treated as missing.

Missing data never raises: a token without a value renders its ``default`` filter's value, or
``missing_text`` (empty by default), and is reported in ``RenderResult.missing`` so the caller
can branch on it. Output is capped at ``max_output`` characters (``truncated`` says so).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from crmflow.tokens.filters import FILTERS, MISSING, apply
from crmflow.tokens.syntax import Template, Token, parse

MAX_OUTPUT_CHARS = 100_000

# The explicit "unknown" value a whole-field token resolves to when its data is missing and it
# has no default. A dict survives every hop (pydantic, Temporal payloads, protobuf Struct), and
# actions branch on it with ``is_unknown``.
UNKNOWN_KEY = "$unknown"


def unknown(path: str) -> dict[str, str]:
    return {UNKNOWN_KEY: path}


def is_unknown(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and UNKNOWN_KEY in value


class Escape(StrEnum):
    NONE = "none"
    HTML = "html"  # email bodies
    JSON = "json"  # webhook bodies: string contents of a JSON string literal


def to_text(v: Any) -> str:
    if v is MISSING or v is None:
        return ""
    t = type(v)
    if t is str:
        return v  # type: ignore[no-any-return]
    if t is bool:
        return "true" if v else "false"
    if t is int or t is Decimal:
        return str(v)
    if t is float:
        return str(int(v)) if v.is_integer() and abs(v) < 1e16 else repr(v)
    if t is datetime or t is date:
        return v.isoformat()  # type: ignore[no-any-return]
    if t is list or t is dict:
        return json.dumps(v, ensure_ascii=False, default=lambda _: None)[:MAX_OUTPUT_CHARS]
    return ""  # an object we do not know how to show is never str()-ed


def lookup(data: Any, path: tuple[str, ...]) -> Any:
    """Walk plain dicts and lists; MISSING when any step is not there."""
    cur = data
    for seg in path:
        t = type(cur)
        if t is dict:
            if seg not in cur:
                return MISSING
            cur = cur[seg]
        elif t is list:
            if not seg.isdigit() or int(seg) >= len(cur):
                return MISSING
            cur = cur[int(seg)]
        else:
            return MISSING
    if cur is None:
        return MISSING
    t = type(cur)
    if t in (str, int, float, bool, list, dict, datetime, date, Decimal):
        return cur
    return MISSING


def evaluate(token: Token, context: dict[str, Any]) -> Any:
    """The token's value after filters; MISSING when there is none (and no default)."""
    value = lookup(context, token.path)
    for f in token.filters:
        value = apply(f.name, value, f.args)
    return value


def _escape(text: str, mode: Escape, raw_json: bool) -> str:
    if mode is Escape.HTML:
        return html.escape(text, quote=True)
    if mode is Escape.JSON and not raw_json:
        return json.dumps(text, ensure_ascii=False)[1:-1]
    return text


@dataclass
class RenderResult:
    text: str
    missing: list[str] = field(default_factory=list)
    truncated: bool = False


def render_template(
    template: Template,
    context: dict[str, Any],
    *,
    escape: Escape | str = Escape.NONE,
    missing_text: str = "",
    max_output: int = MAX_OUTPUT_CHARS,
) -> RenderResult:
    mode = Escape(escape)
    out: list[str] = []
    size = 0
    result = RenderResult("")
    for seg in template.segments:
        if isinstance(seg, str):
            piece = seg
        else:
            value = evaluate(seg, context)
            if value is MISSING:
                result.missing.append(seg.dotted)
                piece = missing_text
            else:
                raw_json = bool(seg.filters) and FILTERS[seg.filters[-1].name].json_output
                piece = _escape(to_text(value), mode, raw_json)
        if size + len(piece) > max_output:
            out.append(piece[: max_output - size])
            result.truncated = True
            break
        out.append(piece)
        size += len(piece)
    result.text = "".join(out)
    return result


def render(
    text: str,
    context: dict[str, Any],
    *,
    escape: Escape | str = Escape.NONE,
    missing_text: str = "",
    max_output: int = MAX_OUTPUT_CHARS,
) -> str:
    """Render ``text``; syntax errors raise TemplateError, missing data never raises."""
    return render_template(
        parse(text), context, escape=escape, missing_text=missing_text, max_output=max_output
    ).text


def resolve_value(text: str, context: dict[str, Any], *, escape: Escape | str = Escape.NONE) -> Any:
    """A field's value: typed when the text is one token, else the rendered string.

    One token with no data and no default gives ``unknown(path)``.
    """
    template = parse(text)
    token = template.single_token
    if token is None:
        return render_template(template, context, escape=escape).text
    value = evaluate(token, context)
    if value is MISSING:
        return unknown(token.dotted)
    if isinstance(value, str) and len(value) > MAX_OUTPUT_CHARS:
        return value[:MAX_OUTPUT_CHARS]
    if type(value) in (datetime, date):
        return value.isoformat()
    if type(value) is Decimal:
        return float(value)
    return value


def build_context(
    *,
    object_type: str,
    record: dict[str, Any] | None,
    sources: dict[str, dict[str, Any] | None] | None = None,
    actions: dict[str, Any] | None = None,
    event: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The data a token can reach. ``<object_type>`` is an alias of ``record``."""
    props = dict(record or {})
    return {
        "record": props,
        object_type: props,
        "sources": {k: (v if v is not None else MISSING) for k, v in (sources or {}).items()},
        "actions": _actions(actions or {}),
        "event": dict(event or {}),
    }


def _actions(outputs: dict[str, Any]) -> dict[str, Any]:
    # Accept both {id: {name: v}} and {id: {"outputs": {name: v}}}.
    out: dict[str, Any] = {}
    for aid, val in outputs.items():
        if type(val) is dict and type(val.get("outputs")) is dict:
            out[aid] = val
        else:
            out[aid] = {"outputs": val}
    return out

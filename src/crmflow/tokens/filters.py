"""The closed set of token filters.

Each filter is a pure function of (value, *literal args) over plain data. Arguments are checked
at parse time (unknown filter, wrong argument count or type -> TemplateError), so rendering a
published template never fails on them. Filters never raise at render time: a value they cannot
handle passes through unchanged (or becomes missing, for ``date``/``number``).
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from crmflow.tokens.syntax import Literal, TemplateError

MISSING: Any = object()  # a value that is not there (distinct from an explicit None)

MAX_TRUNCATE = 100_000
# strftime directives allowed in ``date``: portable ones only (no %n/%t/%-d platform quirks).
_DATE_FORMAT = re.compile(r"^(?:[^%]|%[aAbBdHIjmMpSUwWyYzZ%])*$")


@dataclass(frozen=True)
class FilterSpec:
    fn: Callable[..., Any]
    arg_types: tuple[type | tuple[type, ...], ...] = ()
    min_args: int = 0
    # Keeps MISSING / empty values (default must see them; others skip missing input).
    handles_missing: bool = False
    # Output is already JSON (the ``json`` filter): inserted verbatim in JSON escaping mode.
    json_output: bool = False


def _is_blank(v: Any) -> bool:
    return v is MISSING or v is None or v == "" or v == [] or v == {}


def _default(v: Any, fallback: Literal) -> Any:
    return fallback if _is_blank(v) else v


def _text(v: Any) -> str:
    from crmflow.tokens.render import to_text

    return to_text(v)


def _truncate(v: Any, n: int, ellipsis: str = "...") -> str:
    s = _text(v)
    n = max(0, min(int(n), MAX_TRUNCATE))
    if len(s) <= n:
        return s
    keep = max(0, n - len(ellipsis))
    return s[:keep] + ellipsis[: n - keep]


def parse_datetime(v: Any) -> datetime | date | None:
    if isinstance(v, datetime):
        return v
    if isinstance(v, date):
        return v
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float) and math.isfinite(v):
        try:  # HubSpot-style epoch milliseconds
            return datetime.fromtimestamp(v / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(v, str) and len(v) <= 64:
        s = v.strip()
        try:
            if len(s) == 10:
                return date.fromisoformat(s)
            return datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _date(v: Any, fmt: str = "%Y-%m-%d") -> Any:
    d = parse_datetime(v)
    if d is None:
        return MISSING
    return d.strftime(fmt)


def _to_number(v: Any) -> float | int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return v if math.isfinite(v) else None
    if isinstance(v, str) and len(v) <= 64:
        try:
            f = float(v.replace(",", "").strip())
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _number(v: Any, decimals: int = 0, sep: str = ",") -> Any:
    n = _to_number(v)
    if n is None:
        return MISSING
    decimals = max(0, min(int(decimals), 10))
    whole, _, frac = f"{n:,.{decimals}f}".partition(".")
    sep = sep[:3]
    point = "," if sep == "." else "."  # 1.234,50 when thousands are dots
    return whole.replace(",", sep) + (point + frac if frac else "")


def _round(v: Any, decimals: int = 0) -> Any:
    n = _to_number(v)
    if n is None:
        return MISSING
    r = round(n, max(0, min(int(decimals), 10)))
    return int(r) if decimals == 0 else r


def _join(v: Any, sep: str = ", ") -> Any:
    if isinstance(v, list):
        return sep.join(_text(x) for x in v)
    return v


def _capitalize(v: Any) -> str:
    s = _text(v)
    return s[:1].upper() + s[1:]


FILTERS: dict[str, FilterSpec] = {
    "default": FilterSpec(_default, ((str, int, float),), min_args=1, handles_missing=True),
    "upcase": FilterSpec(lambda v: _text(v).upper()),
    "downcase": FilterSpec(lambda v: _text(v).lower()),
    "capitalize": FilterSpec(_capitalize),
    "strip": FilterSpec(lambda v: _text(v).strip()),
    "truncate": FilterSpec(_truncate, (int, str), min_args=1),
    "date": FilterSpec(_date, (str,)),
    "number": FilterSpec(_number, (int, str)),
    "round": FilterSpec(_round, (int,)),
    "join": FilterSpec(_join, (str,)),
    "first": FilterSpec(lambda v: v[0] if isinstance(v, list) and v else v),
    "last": FilterSpec(lambda v: v[-1] if isinstance(v, list) and v else v),
    "size": FilterSpec(lambda v: len(v) if isinstance(v, list | dict | str) else 0),
    "urlencode": FilterSpec(lambda v: urllib.parse.quote(_text(v), safe="")),
    "json": FilterSpec(
        lambda v: json.dumps(None if v is MISSING else v, ensure_ascii=False, default=_text),
        handles_missing=True,
        json_output=True,
    ),
}


def check_filter(name: str, args: tuple[Literal, ...], position: int) -> None:
    spec = FILTERS.get(name)
    if spec is None:
        known = ", ".join(sorted(FILTERS))
        raise TemplateError(f"unknown filter {name!r} (known: {known})", position=position)
    if len(args) < spec.min_args or len(args) > len(spec.arg_types):
        want = (
            f"{spec.min_args}..{len(spec.arg_types)}"
            if spec.min_args != len(spec.arg_types)
            else str(spec.min_args)
        )
        raise TemplateError(
            f"filter {name!r} takes {want} argument(s), got {len(args)}", position=position
        )
    for arg, typ in zip(args, spec.arg_types, strict=False):
        if not isinstance(arg, typ):
            raise TemplateError(f"filter {name!r}: bad argument {arg!r}", position=position)
    fmt = str(args[0]) if args else ""
    if name == "date" and args and not (len(fmt) <= 64 and _DATE_FORMAT.match(fmt)):
        raise TemplateError(
            f"filter 'date': unsupported format {args[0]!r} (use %Y %m %d %H %M %S %b %B %a %A...)",
            position=position,
        )


def apply(name: str, value: Any, args: tuple[Literal, ...]) -> Any:
    spec = FILTERS[name]
    if value is MISSING and not spec.handles_missing:
        return MISSING
    try:
        return spec.fn(value, *args)
    except (ValueError, TypeError, OverflowError):  # odd data never breaks a render
        return value

"""Format data: string, number and date formatting, and a small safe formula language.

Formulas are parsed with ``ast`` and only arithmetic, comparisons, names of the action's
inputs, literals and a few whitelisted functions are evaluated: no attribute access, no
calls to anything else, bounded exponents.
"""

from __future__ import annotations

import ast
import math
import operator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from crmflow.actions import data as spec
from crmflow.actions.data import FormatDataFields, FormatOperation
from crmflow.criteria.values import as_datetime, as_number
from crmflow.errors import InvalidArgument
from executor.activities.base import ActionContext, handles

_BIN = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMP = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_FUNCS: dict[str, Any] = {
    "min": min,
    "max": max,
    "abs": abs,
    "round": round,
    "len": len,
    "floor": math.floor,
    "ceil": math.ceil,
    "upper": lambda s: str(s).upper(),
    "lower": lambda s: str(s).lower(),
    "concat": lambda *a: "".join("" if x is None else str(x) for x in a),
    "if_else": lambda c, a, b: a if c else b,
    "number": lambda x: as_number(x) or 0.0,
}


def _bad(msg: str) -> InvalidArgument:
    return InvalidArgument.field("fields.formula", msg)


def evaluate_formula(formula: str, names: dict[str, Any]) -> Any:
    try:
        tree = ast.parse(formula, mode="eval")
    except SyntaxError as exc:
        raise _bad(f"not a formula: {exc.msg}") from None

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise _bad(f"unknown name {node.id!r} (inputs: {', '.join(sorted(names))})")
            v = names[node.id]
            n = as_number(v)
            return n if n is not None and not isinstance(v, bool) else v
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and abs(as_number(right) or 0) > 100:
                raise _bad("exponent too large")
            try:
                return _BIN[type(node.op)](left, right)
            except ZeroDivisionError:
                raise _bad("division by zero") from None
            except TypeError as exc:
                raise _bad(str(exc)) from None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd | ast.Not):
            v = ev(node.operand)
            return (
                -v
                if isinstance(node.op, ast.USub)
                else (v if isinstance(node.op, ast.UAdd) else not v)
            )
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP:
            return _CMP[type(node.ops[0])](ev(node.left), ev(node.comparators[0]))
        if isinstance(node, ast.BoolOp):
            vals = [ev(v) for v in node.values]
            return all(vals) if isinstance(node.op, ast.And) else any(vals)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            fn = _FUNCS.get(node.func.id)
            if fn is None:
                raise _bad(f"unknown function {node.func.id!r}")
            return fn(*[ev(a) for a in node.args])
        raise _bad(f"not allowed in a formula: {type(node).__name__}")

    return ev(tree)


def _number_format(value: Any, args: dict[str, Any]) -> str:
    n = as_number(value)
    if n is None:
        raise InvalidArgument.field("fields.input", f"{value!r} is not a number")
    decimals = int(args.get("decimals", 2))
    text = f"{n:,.{decimals}f}"
    thousands, point = str(args.get("thousands", ",")), str(args.get("decimal", "."))
    return text.replace(",", "\0").replace(".", point).replace("\0", thousands)


def _as_dt(value: Any, tz: str) -> datetime:
    dt = as_datetime(value)
    if dt is None:
        raise InvalidArgument.field("fields.input", f"{value!r} is not a date")
    return dt.astimezone(ZoneInfo(tz))


def format_value(f: FormatDataFields, tz: str) -> Any:
    op, v, a = f.operation, f.input, f.args
    text = "" if v is None else str(v)
    if op == FormatOperation.UPPERCASE:
        return text.upper()
    if op == FormatOperation.LOWERCASE:
        return text.lower()
    if op == FormatOperation.CAPITALIZE:
        return " ".join(w[:1].upper() + w[1:].lower() for w in text.split(" "))
    if op == FormatOperation.TRIM:
        return " ".join(text.split())
    if op == FormatOperation.REPLACE:
        return text.replace(str(a.get("old", "")), str(a.get("new", "")))
    if op == FormatOperation.SUBSTRING:
        return text[int(a.get("start", 0)) : a.get("end")]
    if op == FormatOperation.NUMBER_FORMAT:
        return _number_format(v, a)
    if op == FormatOperation.ROUND:
        n = as_number(v)
        if n is None:
            raise InvalidArgument.field("fields.input", f"{v!r} is not a number")
        r = round(n, int(a.get("decimals", 0)))
        return int(r) if float(r).is_integer() else r
    if op == FormatOperation.DATE_FORMAT:
        zone = str(a.get("time_zone") or tz)
        return _as_dt(v, zone).strftime(str(a.get("format", "%Y-%m-%d")))
    if op == FormatOperation.DATE_ADD:
        delta = timedelta(days=float(a.get("days", 0)), hours=float(a.get("hours", 0)))
        if isinstance(v, str) and len(v) == 10:
            return (date.fromisoformat(v) + delta).isoformat()
        return (_as_dt(v, tz) + delta).isoformat()
    return evaluate_formula(f.formula, {**f.inputs, **({"input": v} if v is not None else {})})


@handles(spec.FORMAT_DATA)
async def format_data(ctx: ActionContext, f: FormatDataFields) -> dict[str, Any]:
    return {f.output_name: format_value(f, ctx.req.time_zone)}

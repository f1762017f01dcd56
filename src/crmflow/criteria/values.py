"""Coercion of stored property values for comparison (JSON values in, comparable values out)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

Missing = object()


def is_unknown(value: Any) -> bool:
    return value is None or value is Missing or value == "" or value == []


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        # Everything float() accepts starts like this; skipping the rest avoids raising and
        # catching an exception for every enumeration value (the hot path).
        if not text or text[0] not in _NUMBER_START:
            return None
        try:
            return float(text)
        except ValueError:
            return None
    return None


_NUMBER_START = frozenset("0123456789+-.iInN")


def as_datetime(value: Any) -> datetime | None:
    """ISO dates/datetimes and epoch milliseconds; naive values are read as UTC."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        dt = datetime.fromtimestamp(value / 1000, tz=UTC)
    elif isinstance(value, str) and value:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def as_timestamp(value: Any) -> float | None:
    """as_datetime(value) as POSIX seconds; epoch milliseconds take a fast path (hot)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value / 1000
    dt = as_datetime(value)
    return dt.timestamp() if dt is not None else None


def as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).casefold()


def as_set(value: Any) -> set[str]:
    """Multi-select values: a list, or HubSpot's ';'-separated string."""
    if isinstance(value, list):
        return {as_text(v) for v in value}
    if isinstance(value, str):
        return {as_text(v) for v in value.split(";") if v != ""}
    if is_unknown(value):
        return set()
    return {as_text(value)}


def equal(a: Any, b: Any) -> bool:
    na, nb = as_number(a), as_number(b)
    if na is not None and nb is not None:
        return na == nb
    return as_text(a) == as_text(b)

"""Calendar arithmetic for delays and execution windows, in the workflow's time zone.

Pure functions of (now, settings): the workflow calls them with ``workflow.now()`` so replay is
deterministic. Days of week are ISO numbers (1 = Monday .. 7 = Sunday).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from crmflow.model.settings import WorkflowSettings

SPREAD_SECONDS = 15 * 60  # actions released at a window's opening are spread over 15 minutes


def parse_hhmm(value: str, default: time = time(0, 0)) -> time:
    if not value:
        return default
    hh, _, mm = value.partition(":")
    return time(int(hh), int(mm or 0))


def next_weekday_time(now: datetime, tz_name: str, days_of_week: list[int], hhmm: str) -> datetime:
    """The first instant strictly after ``now`` on one of the days, at the time of day."""
    tz = ZoneInfo(tz_name)
    local = now.astimezone(tz)
    at = parse_hhmm(hhmm)
    days = set(days_of_week) or set(range(1, 8))
    for ahead in range(0, 8):
        d = local.date() + timedelta(days=ahead)
        if d.isoweekday() not in days:
            continue
        candidate = datetime.combine(d, at, tzinfo=tz)
        if candidate > local:
            return candidate
    raise ValueError("no matching weekday")  # unreachable: 8 days cover every weekday


def date_property_target(
    value: Any, tz_name: str, offset_days: int = 0, hhmm: str = ""
) -> datetime | None:
    """When a 'delay until date property' ends; None when the property holds no date."""
    tz = ZoneInfo(tz_name)
    if value is None or value == "":
        return None
    parsed: datetime
    if isinstance(value, datetime):
        parsed = value if value.tzinfo else value.replace(tzinfo=tz)
    elif isinstance(value, date):
        parsed = datetime.combine(value, time(0, 0), tzinfo=tz)
    else:
        text = str(value).strip()
        try:
            if len(text) == 10:
                parsed = datetime.combine(date.fromisoformat(text), time(0, 0), tzinfo=tz)
            else:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=tz)
        except ValueError:
            return None
    parsed = parsed + timedelta(days=offset_days)
    if hhmm:
        local = parsed.astimezone(tz)
        parsed = datetime.combine(local.date(), parse_hhmm(hhmm), tzinfo=tz)
    return parsed


def _allowed(local: datetime, s: WorkflowSettings) -> bool:
    if local.date() in set(s.blocked_dates):
        return False
    w = s.execution_window
    if w is None:
        return True
    if w.days_of_week and local.isoweekday() not in w.days_of_week:
        return False
    start, end = parse_hhmm(w.start_time), parse_hhmm(w.end_time, time(23, 59, 59))
    t = local.time()
    return start <= t < end if start < end else (t >= start or t < end)


def next_allowed_time(now: datetime, s: WorkflowSettings) -> datetime | None:
    """None when an action may run now; otherwise the next window opening (in UTC)."""
    if s.execution_window is None and not s.blocked_dates:
        return None
    tz = ZoneInfo(s.time_zone)
    local = now.astimezone(tz)
    if _allowed(local, s):
        return None
    start = parse_hhmm(s.execution_window.start_time) if s.execution_window else time(0, 0)
    # Candidates: today's and the next days' window openings (a year covers blocked runs).
    for ahead in range(0, 370):
        d = local.date() + timedelta(days=ahead)
        candidate = datetime.combine(d, start, tzinfo=tz)
        if candidate <= local:
            continue
        if _allowed(candidate, s):
            return candidate.astimezone(ZoneInfo("UTC"))
    return None  # everything blocked for a year: run rather than wait forever


def spread_offset(*parts: str) -> timedelta:
    """A stable offset in [0, 15 min) so records released at once don't all run at once."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % SPREAD_SECONDS)


def split_bucket(*parts: str) -> int:
    """A stable number in [0, 100) for a random split, the same on every replay and retry."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100

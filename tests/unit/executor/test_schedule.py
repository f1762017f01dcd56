"""Calendar arithmetic of delays and execution windows (pure functions)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from executor.schedule import (
    date_property_target,
    next_allowed_time,
    next_weekday_time,
    split_bucket,
    spread_offset,
)

from crmflow.model.settings import ExecutionWindow, WorkflowSettings

CPH = ZoneInfo("Europe/Copenhagen")


def test_next_weekday_time_is_strictly_later_and_in_the_zone() -> None:
    now = datetime(2026, 3, 2, 8, 0, tzinfo=CPH)  # Monday 08:00
    assert next_weekday_time(now, "Europe/Copenhagen", [1], "09:00") == now.replace(hour=9)
    assert next_weekday_time(now.replace(hour=9), "Europe/Copenhagen", [1], "09:00") == (
        now.replace(hour=9) + timedelta(days=7)
    )
    # Across the DST switch (29 March 2026) the local time stays 09:00.
    friday = datetime(2026, 3, 27, 10, 0, tzinfo=CPH)
    nxt = next_weekday_time(friday, "Europe/Copenhagen", [1], "09:00")
    assert (nxt.date(), nxt.hour, nxt.utcoffset()) == (date(2026, 3, 30), 9, timedelta(hours=2))


def test_date_property_target_parses_dates_and_datetimes() -> None:
    assert date_property_target("2026-05-10", "Europe/Copenhagen", -7, "09:30") == datetime(
        2026, 5, 3, 9, 30, tzinfo=CPH
    )
    assert date_property_target("2026-05-10T12:00:00Z", "UTC") == datetime.fromisoformat(
        "2026-05-10T12:00:00+00:00"
    )
    assert date_property_target(None, "UTC") is None
    assert date_property_target("not a date", "UTC") is None


def test_window_and_blocked_dates() -> None:
    s = WorkflowSettings(
        time_zone="Europe/Copenhagen",
        execution_window=ExecutionWindow(
            days_of_week=[1, 2, 3, 4, 5], start_time="09:00", end_time="17:00"
        ),
        blocked_dates=[date(2026, 12, 24), date(2026, 12, 25)],
    )
    inside = datetime(2026, 12, 22, 10, 0, tzinfo=CPH)
    assert next_allowed_time(inside, s) is None
    evening = datetime(2026, 12, 23, 18, 0, tzinfo=CPH)  # then 24th+25th blocked, 26-27 weekend
    assert next_allowed_time(evening, s) == datetime(2026, 12, 28, 9, 0, tzinfo=CPH)
    assert next_allowed_time(evening, WorkflowSettings()) is None


def test_spread_and_split_are_stable_and_bounded() -> None:
    offsets = {spread_offset("wf", str(i)) for i in range(200)}
    assert all(timedelta(0) <= o < timedelta(minutes=15) for o in offsets) and len(offsets) > 100
    assert spread_offset("a", "b") == spread_offset("a", "b")
    buckets = [split_bucket("wf", str(i), "1") for i in range(2000)]
    assert all(0 <= b < 100 for b in buckets)
    assert 400 < sum(b < 25 for b in buckets) < 600  # roughly uniform

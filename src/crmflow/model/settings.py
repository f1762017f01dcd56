"""Workflow settings: time zone, execution windows, blocked dates, turn-off, notifications."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, Field, field_validator

from crmflow.model.base import Model


class ExecutionWindow(Model):
    """Actions run only on these days, between these times, in the workflow's time zone."""

    days_of_week: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5])
    start_time: str = "09:00"
    end_time: str = "17:00"


class Notifications(Model):
    error_recipients: list[str] = Field(default_factory=list)  # user ids or emails
    enrollment_spike_threshold: int = Field(default=0, ge=0)  # per hour; 0 = off


class MetricsSettings(Model):
    track_conversion: bool = False
    conversion_property: str = ""


class WorkflowSettings(Model):
    time_zone: str = "UTC"
    execution_window: ExecutionWindow | None = None
    blocked_dates: list[date] = Field(default_factory=list)
    auto_off_at: AwareDatetime | None = None
    notifications: Notifications = Field(default_factory=Notifications)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

"""Enrollment triggers and enrollment settings (re-enrollment, unenrollment, suppression, goal)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field, model_validator

from crmflow.model.base import Model
from crmflow.model.criteria import FilterGroup, PropertyFilter


class ManualTrigger(Model):
    """Enrolled only by the EnrollManually rpc (or another workflow's enroll action)."""


class ScheduleFrequency(StrEnum):
    ONCE = "SCHEDULE_FREQUENCY_ONCE"
    DAILY = "SCHEDULE_FREQUENCY_DAILY"
    WEEKLY = "SCHEDULE_FREQUENCY_WEEKLY"
    MONTHLY = "SCHEDULE_FREQUENCY_MONTHLY"
    ANNUALLY = "SCHEDULE_FREQUENCY_ANNUALLY"
    DATE_PROPERTY = "SCHEDULE_FREQUENCY_DATE_PROPERTY"


class ScheduleTrigger(Model):
    frequency: ScheduleFrequency
    # ONCE: the instant; others use time_of_day in the workflow's time zone.
    at: AwareDatetime | None = None
    time_of_day: str = "09:00"
    days_of_week: list[int] = Field(default_factory=list)  # 1=Monday .. 7=Sunday
    day_of_month: int = Field(default=0, ge=0, le=31)
    month: int = Field(default=0, ge=0, le=12)
    # DATE_PROPERTY: each record enrolls on its own date (+ offset days, may be negative).
    date_property: str = ""
    offset_days: int = 0
    filter: FilterGroup | None = None

    @model_validator(mode="after")
    def _complete(self) -> ScheduleTrigger:
        f = self.frequency
        if f == ScheduleFrequency.ONCE and self.at is None:
            raise ValueError("a one-time schedule needs 'at'")
        if f == ScheduleFrequency.WEEKLY and not self.days_of_week:
            raise ValueError("a weekly schedule needs days_of_week")
        if any(d < 1 or d > 7 for d in self.days_of_week):
            raise ValueError("days_of_week are 1 (Monday) .. 7 (Sunday)")
        if f in (ScheduleFrequency.MONTHLY, ScheduleFrequency.ANNUALLY) and not self.day_of_month:
            raise ValueError("monthly and annual schedules need day_of_month")
        if f == ScheduleFrequency.ANNUALLY and not self.month:
            raise ValueError("an annual schedule needs month")
        if f == ScheduleFrequency.DATE_PROPERTY and not self.date_property:
            raise ValueError("a date-property schedule needs date_property")
        hh, _, mm = self.time_of_day.partition(":")
        if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
            raise ValueError("time_of_day must be HH:MM")
        return self


class EventType(StrEnum):
    RECORD_CREATED = "EVENT_TYPE_RECORD_CREATED"
    PROPERTY_CHANGED = "EVENT_TYPE_PROPERTY_CHANGED"
    RECORD_DELETED = "EVENT_TYPE_RECORD_DELETED"
    FORM_SUBMITTED = "EVENT_TYPE_FORM_SUBMITTED"
    CUSTOM_EVENT = "EVENT_TYPE_CUSTOM_EVENT"
    ASSOCIATION_ADDED = "EVENT_TYPE_ASSOCIATION_ADDED"
    ASSOCIATION_REMOVED = "EVENT_TYPE_ASSOCIATION_REMOVED"
    LIST_MEMBERSHIP_ADDED = "EVENT_TYPE_LIST_MEMBERSHIP_ADDED"
    LIST_MEMBERSHIP_REMOVED = "EVENT_TYPE_LIST_MEMBERSHIP_REMOVED"


class EventRefinement(Model):
    """'Has completed at least/at most N times, within a date range'."""

    min_count: int = Field(default=0, ge=0)
    max_count: int = Field(default=0, ge=0)  # 0 = no upper bound
    window_start: AwareDatetime | None = None
    window_end: AwareDatetime | None = None


class EventTrigger(Model):
    event_type: EventType
    property: str = ""  # PROPERTY_CHANGED
    from_values: list[str] = Field(default_factory=list)
    to_values: list[str] = Field(default_factory=list)
    form_id: str = ""  # FORM_SUBMITTED ("" = any form)
    event_name: str = ""  # CUSTOM_EVENT
    event_filters: list[PropertyFilter] = Field(default_factory=list)
    association_object_type: str = ""  # ASSOCIATION_*
    association_label: str = ""
    list_id: str = ""  # LIST_MEMBERSHIP_*
    refinement: EventRefinement | None = None
    # Optional extra criteria the enrolled record must also meet when the event occurs.
    filter: FilterGroup | None = None

    @model_validator(mode="after")
    def _complete(self) -> EventTrigger:
        if self.event_type == EventType.PROPERTY_CHANGED and not self.property:
            raise ValueError("a property-changed trigger needs property")
        if self.event_type == EventType.CUSTOM_EVENT and not self.event_name:
            raise ValueError("a custom-event trigger needs event_name")
        if (
            self.event_type
            in (
                EventType.LIST_MEMBERSHIP_ADDED,
                EventType.LIST_MEMBERSHIP_REMOVED,
            )
            and not self.list_id
        ):
            raise ValueError("a list-membership trigger needs list_id")
        r = self.refinement
        if r and r.max_count and r.min_count > r.max_count:
            raise ValueError("refinement min_count is above max_count")
        return self


class CriteriaTrigger(Model):
    """Enroll when the record goes from not matching to matching."""

    filter: FilterGroup


class Trigger(Model):
    """Exactly one kind (a proto ``oneof``)."""

    manual: ManualTrigger | None = None
    schedule: ScheduleTrigger | None = None
    event: EventTrigger | None = None
    criteria: CriteriaTrigger | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        set_kinds = [k for k in ("manual", "schedule", "event", "criteria") if getattr(self, k)]
        if len(set_kinds) != 1:
            raise ValueError("a trigger has exactly one of manual, schedule, event, criteria")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("manual", "schedule", "event", "criteria") if getattr(self, k))


class ReenrollmentSettings(Model):
    enabled: bool = False
    # Which of the triggers may re-enroll; empty = any event/criteria trigger.
    triggers: list[Trigger] = Field(default_factory=list)


class EnrollmentSettings(Model):
    triggers: list[Trigger] = Field(default_factory=list)  # OR'ed
    reenrollment: ReenrollmentSettings = Field(default_factory=ReenrollmentSettings)
    unenroll_when_criteria_not_met: bool = False
    unenrollment_triggers: list[Trigger] = Field(default_factory=list)
    suppression_list_ids: list[str] = Field(default_factory=list)
    goal: FilterGroup | None = None
    # Workflow ids to unenroll the record from when it enrolls here.
    unenroll_from_workflow_ids: list[str] = Field(default_factory=list)

    def is_manual_only(self) -> bool:
        return all(t.manual for t in self.triggers)

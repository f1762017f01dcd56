"""Control-flow action types: interpreted inside the workflow, never activities."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field, model_validator

from crmflow.actions.registry import ActionSpec
from crmflow.model.base import Model
from crmflow.model.triggers import EventTrigger

DELAY = "delay"
IF_THEN = "if_then"
VALUE_EQUALS = "value_equals"
RANDOM_SPLIT = "random_split"
CONTROL_TYPES = frozenset({DELAY, IF_THEN, VALUE_EQUALS, RANDOM_SPLIT})

MAX_IF_THEN_BRANCHES = 20
MAX_VALUE_EQUALS_BRANCHES = 250


class DelayKind(StrEnum):
    DURATION = "duration"
    UNTIL_DATE = "until_date"
    UNTIL_DATE_PROPERTY = "until_date_property"
    UNTIL_WEEKDAY_TIME = "until_weekday_time"
    UNTIL_EVENT = "until_event"


class DelayFields(Model):
    kind: DelayKind = DelayKind.DURATION
    seconds: int = Field(default=0, ge=0)  # DURATION; UNTIL_EVENT: the maximum wait
    date: AwareDatetime | None = None  # UNTIL_DATE
    date_property: str = ""  # UNTIL_DATE_PROPERTY
    offset_days: int = 0
    time_of_day: str = ""  # "HH:MM" for UNTIL_WEEKDAY_TIME / date property
    days_of_week: list[int] = Field(default_factory=list)
    # When the date has already passed: go on at once, or end the enrollment.
    if_passed: str = "continue"
    event: EventTrigger | None = None  # UNTIL_EVENT

    @model_validator(mode="after")
    def _complete(self) -> DelayFields:
        k = self.kind
        if k == DelayKind.DURATION and self.seconds <= 0:
            raise ValueError("a duration delay needs seconds > 0")
        if k == DelayKind.UNTIL_DATE and self.date is None:
            raise ValueError("an until-date delay needs date")
        if k == DelayKind.UNTIL_DATE_PROPERTY and not self.date_property:
            raise ValueError("an until-date-property delay needs date_property")
        if k == DelayKind.UNTIL_WEEKDAY_TIME and not (self.days_of_week and self.time_of_day):
            raise ValueError("an until-weekday delay needs days_of_week and time_of_day")
        if k == DelayKind.UNTIL_EVENT and (self.event is None or self.seconds <= 0):
            raise ValueError("an until-event delay needs event and seconds (maximum wait)")
        if self.if_passed not in ("continue", "end"):
            raise ValueError("if_passed is 'continue' or 'end'")
        return self


class NoFields(Model):
    pass


class ValueEqualsFields(Model):
    """Branch on one value: a property of the enrolled record, or a token expression."""

    property: str = ""
    expression: str = ""

    @model_validator(mode="after")
    def _one(self) -> ValueEqualsFields:
        if bool(self.property) == bool(self.expression):
            raise ValueError("set exactly one of property or expression")
        return self


def _delay_summary(f: DelayFields) -> str:  # type: ignore[misc]
    if f.kind == DelayKind.DURATION:
        return f"Delay {_human(f.seconds)}"
    if f.kind == DelayKind.UNTIL_DATE:
        return f"Delay until {f.date:%Y-%m-%d %H:%M}" if f.date else "Delay until date"
    if f.kind == DelayKind.UNTIL_DATE_PROPERTY:
        return f"Delay until {f.date_property} {f.offset_days:+d} days"
    if f.kind == DelayKind.UNTIL_WEEKDAY_TIME:
        return f"Delay until {f.time_of_day} on days {f.days_of_week}"
    return f"Wait for event (at most {_human(f.seconds)})"


def _human(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


SPECS = [
    ActionSpec(DELAY, DelayFields, "Delay", "control", control_flow=True, summary=_delay_summary),  # type: ignore[arg-type]
    ActionSpec(
        IF_THEN,
        NoFields,
        "If/then branch",
        "control",
        control_flow=True,
        summary=lambda f: "If/then branch",
    ),
    ActionSpec(
        VALUE_EQUALS,
        ValueEqualsFields,
        "Value equals branch",
        "control",
        control_flow=True,
        token_fields=("expression",),
        summary=lambda f: f"Branch on {f.property or f.expression}",
    ),  # type: ignore[attr-defined]
    ActionSpec(
        RANDOM_SPLIT,
        NoFields,
        "Random split",
        "control",
        control_flow=True,
        summary=lambda f: "Random split",
    ),
]

"""Record actions: change the enrolled record or records around it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import model_validator

from crmflow.actions.registry import ActionSpec
from crmflow.model.base import Model

SET_PROPERTY = "set_property"


class SetMode(StrEnum):
    SET = "set"  # value (may hold tokens: {{ sources.company.domain }})
    COPY = "copy"  # from another property of the enrolled record
    CLEAR = "clear"
    INCREMENT = "increment"
    DECREMENT = "decrement"
    ADD_DAYS = "add_days"  # date arithmetic on a date/datetime property


class SetPropertyFields(Model):
    property: str
    mode: SetMode = SetMode.SET
    value: Any = None
    source_property: str = ""  # COPY
    amount: float = 0  # INCREMENT / DECREMENT / ADD_DAYS
    # "" = the enrolled record; otherwise a data source id whose record is updated.
    target_source: str = ""

    @model_validator(mode="after")
    def _complete(self) -> SetPropertyFields:
        if self.mode == SetMode.SET and self.value is None:
            raise ValueError("mode 'set' needs value")
        if self.mode == SetMode.COPY and not self.source_property:
            raise ValueError("mode 'copy' needs source_property")
        return self


SPECS = [
    ActionSpec(
        SET_PROPERTY, SetPropertyFields, "Set property value", "record",
        token_fields=("value",),
        summary=lambda f: f"Set {f.property}",  # type: ignore[attr-defined]
    ),
]

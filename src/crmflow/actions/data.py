"""Format data: string, number and date formatting and simple formulas, with an output."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from crmflow.actions.registry import ActionSpec
from crmflow.model.base import Model

FORMAT_DATA = "format_data"


class FormatOperation(StrEnum):
    UPPERCASE = "uppercase"
    LOWERCASE = "lowercase"
    CAPITALIZE = "capitalize"  # Every Word Capitalized
    TRIM = "trim"
    REPLACE = "replace"  # args: old, new
    SUBSTRING = "substring"  # args: start, end
    NUMBER_FORMAT = "number_format"  # args: decimals, thousands (separator), decimal (point)
    ROUND = "round"  # args: decimals
    DATE_FORMAT = "date_format"  # args: format (strftime), time_zone
    DATE_ADD = "date_add"  # args: days, hours
    FORMULA = "formula"  # formula over named inputs: "(price * quantity) - discount"


class FormatDataFields(Model):
    operation: FormatOperation
    input: Any = None  # usually a token
    inputs: dict[str, Any] = Field(default_factory=dict)  # FORMULA's named values
    formula: str = ""
    args: dict[str, Any] = Field(default_factory=dict)
    output_name: str = "result"

    @model_validator(mode="after")
    def _complete(self) -> FormatDataFields:
        if self.operation == FormatOperation.FORMULA and not self.formula:
            raise ValueError("a formula needs formula")
        return self


SPECS = [
    ActionSpec(
        FORMAT_DATA,
        FormatDataFields,
        "Format data",
        "data",
        token_fields=("input", "inputs"),
        summary=lambda f: f"Format data: {f.operation.value}",
    ),  # type: ignore[attr-defined]
]

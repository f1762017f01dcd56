"""Custom code: a Python function run in a sandboxed process, with typed outputs."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from crmflow.actions.registry import ActionSpec
from crmflow.model.base import Model

CUSTOM_CODE = "custom_code"
MAX_SECONDS = 20
MAX_MEMORY_MB = 128
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class OutputType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"
    ENUMERATION = "enumeration"


class CodeOutput(Model):
    name: str
    type: OutputType = OutputType.STRING
    options: list[str] = Field(default_factory=list)  # enumeration

    @field_validator("name")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("output names are identifiers")
        return v


class CustomCodeFields(Model):
    """``code`` defines ``def main(event): return {"outputs": {...}}``.

    ``event`` is {"inputs": {...}, "object": {"object_type", "record_id"}}; named tenant secrets
    are environment variables of the process; nothing else of the worker is visible.
    """

    code: str = Field(min_length=1, max_length=100_000)
    inputs: dict[str, Any] = Field(default_factory=dict)  # values may hold tokens
    secrets: list[str] = Field(default_factory=list, max_length=20)
    outputs: list[CodeOutput] = Field(default_factory=list, max_length=50)
    allow_network: bool = False
    timeout_seconds: int = Field(default=MAX_SECONDS, ge=1, le=MAX_SECONDS)

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _NAME.match(name):
                raise ValueError(f"secret name {name!r} is not an identifier")
        return v


SPECS = [
    ActionSpec(
        CUSTOM_CODE,
        CustomCodeFields,
        "Custom code",
        "custom_code",
        undoable=False,
        token_fields=("inputs",),
        plan_feature="operations_hub",
        summary=lambda f: f"Run custom code ({len(f.outputs)} outputs)",
    ),  # type: ignore[attr-defined]
]

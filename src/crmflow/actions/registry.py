"""Action type registry. Unknown keys fail loudly (``UnknownActionType``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from crmflow.errors import FieldViolation, InvalidArgument


class UnknownActionType(InvalidArgument):
    pass


@dataclass(frozen=True)
class ActionSpec:
    action_type: str
    fields_model: type[BaseModel]
    label: str
    category: str  # control | record | communication | webhook | custom_code | data | flow
    version: int = 1
    control_flow: bool = False
    # Changes to some actions cannot be undone (custom code holds secrets references and code).
    undoable: bool = True
    # Plan feature that unlocks it ("" = every plan).
    plan_feature: str = ""
    # Field names whose string values may hold personalization tokens.
    token_fields: tuple[str, ...] = ()
    # Human summary for the Temporal UI and the minimap ("Delay 2 days").
    summary: Callable[[Any], str] = field(default=lambda f: "")

    @property
    def key(self) -> tuple[str, int]:
        return (self.action_type, self.version)

    def parse_fields(self, fields: dict[str, Any], *, path: str = "fields") -> BaseModel:
        try:
            return self.fields_model.model_validate(fields)
        except ValidationError as exc:
            violations = [
                FieldViolation(".".join([path, *(str(p) for p in err["loc"])]), err["msg"])
                for err in exc.errors()
            ]
            raise InvalidArgument(
                f"{self.action_type}: {violations[0].field}: {violations[0].description}",
                violations,
            ) from None


class ActionRegistry:
    def __init__(self, specs: Iterable[ActionSpec] = ()) -> None:
        self._specs: dict[tuple[str, int], ActionSpec] = {}
        for s in specs:
            self.register(s)

    def register(self, spec: ActionSpec) -> None:
        if spec.key in self._specs:
            raise ValueError(f"action type {spec.key} registered twice")
        self._specs[spec.key] = spec

    def get(self, action_type: str, version: int = 1) -> ActionSpec:
        try:
            return self._specs[(action_type, version)]
        except KeyError:
            known = ", ".join(sorted({t for t, _ in self._specs}))
            raise UnknownActionType(
                f"unknown action type {action_type!r} v{version} (known: {known})",
                [FieldViolation("action_type", f"unknown action type {action_type!r}")],
            ) from None

    def __contains__(self, key: tuple[str, int]) -> bool:
        return key in self._specs

    def all(self) -> list[ActionSpec]:
        return sorted(self._specs.values(), key=lambda s: (s.category, s.action_type, s.version))

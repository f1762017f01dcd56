"""Generic proto <-> pydantic conversion.

The pydantic models mirror the proto messages field for field (names, and enum values equal to
proto enum value names), so one pair of functions converts every message through its canonical
JSON form. Round-trip tests (tests/unit/model) keep the two in step. A proto message that does
not fit its model fails with ``InvalidArgument`` naming the field, never with a server error.
"""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from pydantic import BaseModel, ValidationError

from crmflow.grpc.errors import from_validation_error

M = TypeVar("M", bound=BaseModel)
P = TypeVar("P", bound=Message)


def message_to_dict(msg: Message) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def from_proto(msg: Message, model: type[M], *, field: str = "") -> M:
    """Proto -> model; validation errors become INVALID_ARGUMENT naming ``field.<path>``."""
    try:
        return model.model_validate(message_to_dict(msg))
    except ValidationError as exc:
        raise from_validation_error(exc, field) from None


def to_proto(model: BaseModel, cls: type[P]) -> P:
    data = model.model_dump(mode="json", exclude_none=True)
    return json_format.ParseDict(data, cls(), ignore_unknown_fields=False)


def struct_to_dict(msg: Message) -> dict[str, Any]:
    return json_format.MessageToDict(msg)


def dict_to_struct(data: dict[str, Any], cls: type[P]) -> P:
    return json_format.ParseDict(data, cls())

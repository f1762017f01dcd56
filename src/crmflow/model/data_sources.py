"""Data sources: records other than the enrolled one whose values actions can use."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import model_validator

from crmflow.model.base import Model

MAX_DATA_SOURCES = 50


class DataSourceKind(StrEnum):
    ASSOCIATED = "DATA_SOURCE_KIND_ASSOCIATED"  # associated records of a type (+ label)
    PROPERTY_MATCH = "DATA_SOURCE_KIND_PROPERTY_MATCH"  # their property == enrolled record's
    PROPERTY_VALUE = "DATA_SOURCE_KIND_PROPERTY_VALUE"  # their property == a given value


class ReduceRule(StrEnum):
    MOST_RECENTLY_UPDATED = "REDUCE_RULE_MOST_RECENTLY_UPDATED"
    MOST_RECENTLY_CREATED = "REDUCE_RULE_MOST_RECENTLY_CREATED"
    FIRST_CREATED = "REDUCE_RULE_FIRST_CREATED"


class DataSource(Model):
    source_id: str  # referenced as {{ sources.<source_id>.<property> }}
    name: str = ""
    kind: DataSourceKind
    object_type: str
    association_label: str = ""
    property: str = ""  # the source record's property to match on
    enrolled_property: str = ""  # PROPERTY_MATCH: the enrolled record's property
    # PROPERTY_MATCH: transform the enrolled value first ("email_domain" turns a@b.com -> b.com)
    transform: str = ""
    value: Any = None  # PROPERTY_VALUE
    reduce: ReduceRule = ReduceRule.MOST_RECENTLY_UPDATED
    is_default: bool = False

    @model_validator(mode="after")
    def _complete(self) -> DataSource:
        if self.kind == DataSourceKind.PROPERTY_MATCH and not (
            self.property and self.enrolled_property
        ):
            raise ValueError("a property-match source needs property and enrolled_property")
        if self.kind == DataSourceKind.PROPERTY_VALUE and (not self.property or self.value is None):
            raise ValueError("a property-value source needs property and value")
        if self.transform not in ("", "email_domain"):
            raise ValueError(f"unknown transform {self.transform!r}")
        return self

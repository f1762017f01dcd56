"""Property value validation and normalisation (the gate every CRM write goes through)."""

from __future__ import annotations

from typing import Any

import pytest

from crmflow.errors import ErrorList, InvalidArgument
from crmflow.records.port import PropertyDefinition, PropertyType
from crmflow.records.schema import (
    STANDARD_OBJECT_TYPES,
    STANDARD_PROPERTIES,
    Schema,
    check_name,
    normalise_value,
    validate_properties,
)

T = PropertyType


def prop(t: PropertyType, options: tuple[str, ...] = (), **kw: Any) -> PropertyDefinition:
    return PropertyDefinition(object_type="x", name="p", type=t, options=list(options), **kw)


@pytest.mark.parametrize(
    ("t", "raw", "stored"),
    [
        (T.STRING, "hi", "hi"), (T.STRING, 7.0, "7"), (T.STRING, True, "true"),
        (T.NUMBER, "1,200", 1200), (T.NUMBER, 2.5, 2.5), (T.NUMBER, 3.0, 3), (T.NUMBER, " 4 ", 4),
        (T.BOOL, "Yes", True), (T.BOOL, False, False),
        (T.DATE, "2024-02-29T23:00:00Z", "2024-02-29"), (T.DATE, 0, "1970-01-01"),
        (T.DATETIME, "2024-01-01T10:00:00+02:00", "2024-01-01T08:00:00+00:00"),
        (T.DATETIME, "1700000000000", "2023-11-14T22:13:20+00:00"),
        (T.OWNER, 17, "17"), (T.STRING, "", None), (T.NUMBER, None, None),
    ],
)  # fmt: skip
def test_values_are_normalised(t: PropertyType, raw: Any, stored: Any) -> None:
    assert normalise_value(prop(t), raw) == stored


def test_enumerations_match_options_case_insensitively() -> None:
    p = prop(T.ENUMERATION, ("Lead", "customer"))
    assert normalise_value(p, "LEAD") == "Lead"
    m = prop(T.MULTI_SELECT, ("a", "b", "c"))
    assert normalise_value(m, "a;C;a") == ["a", "c"]
    assert normalise_value(m, ["B"]) == ["b"]
    with pytest.raises(ValueError, match="not an option"):
        normalise_value(p, "astronaut")
    with pytest.raises(ValueError, match="not an option"):
        normalise_value(m, ["a", "z"])


@pytest.mark.parametrize(
    ("t", "raw"),
    [(T.NUMBER, "many"), (T.NUMBER, True), (T.NUMBER, "nan"), (T.NUMBER, {"a": 1}),
     (T.BOOL, "perhaps"), (T.BOOL, 1), (T.DATE, "yesterday"), (T.DATETIME, [1]),
     (T.STRING, {"a": 1}), (T.OWNER, True), (T.ENUMERATION, ["x"])],
)  # fmt: skip
def test_wrong_types_are_refused(t: PropertyType, raw: Any) -> None:
    options = ("x",) if t == T.ENUMERATION else ()
    with pytest.raises(ValueError):
        normalise_value(prop(t, options), raw)


def _schema(name: str) -> Schema:
    return Schema(STANDARD_OBJECT_TYPES[name], STANDARD_PROPERTIES[name])


def test_validate_collects_every_violation_with_its_field() -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_properties(_schema("deal"), {"amount": "lots", "nope": 1, "createdate": "x"})
    assert {v.field for v in exc.value.violations} == {
        "properties.amount", "properties.nope", "properties.createdate", "properties.dealname"
    }  # fmt: skip
    errs = ErrorList()
    validate_properties(_schema("company"), {}, field="records[3].properties", errors=errs)
    assert [v.field for v in errs.violations] == ["records[3].properties.name"]


def test_required_only_checked_on_create_but_cannot_be_cleared() -> None:
    s = _schema("company")
    assert validate_properties(s, {"domain": "a.test"}, existing={"name": "A"}) == {
        "domain": "a.test"
    }
    with pytest.raises(InvalidArgument, match=r"properties\.name"):
        validate_properties(s, {"name": ""}, existing={"name": "A"})


def test_every_standard_object_has_properties_and_names_are_checked() -> None:
    assert len(STANDARD_OBJECT_TYPES) == 15
    for name, defs in STANDARD_PROPERTIES.items():
        assert {"createdate", "hubspot_owner_id"} <= {d.name for d in defs}, name
        primary = STANDARD_OBJECT_TYPES[name].primary_property
        assert primary in {d.name for d in defs}, name
    check_name("favorite_color", "f")
    for bad in ("Favorite", "1abc", "a-b", "", "x" * 65):
        with pytest.raises(InvalidArgument):
            check_name(bad, "f")

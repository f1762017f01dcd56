"""Format data operations and the safe formula evaluator."""

from __future__ import annotations

import pytest
from executor.activities.data import evaluate_formula, format_value

from crmflow.actions.data import FormatDataFields
from crmflow.errors import InvalidArgument


def fmt(**kw: object) -> object:
    return format_value(FormatDataFields.model_validate(kw), "Europe/Copenhagen")


def test_string_operations() -> None:
    assert fmt(operation="uppercase", input="ada") == "ADA"
    assert fmt(operation="capitalize", input="ada LOVELACE") == "Ada Lovelace"
    assert fmt(operation="trim", input="  a   b ") == "a b"
    assert fmt(operation="replace", input="a-b-c", args={"old": "-", "new": "+"}) == "a+b+c"
    assert fmt(operation="substring", input="abcdef", args={"start": 1, "end": 3}) == "bc"


def test_number_and_date_operations() -> None:
    assert (
        fmt(
            operation="number_format",
            input="1234567.891",
            args={"decimals": 2, "thousands": ".", "decimal": ","},
        )
        == "1.234.567,89"
    )
    assert fmt(operation="round", input=2.6) == 3
    assert (
        fmt(
            operation="date_format", input="2026-01-05T23:30:00Z", args={"format": "%d/%m/%Y %H:%M"}
        )
        == "06/01/2026 00:30"
    )
    assert fmt(operation="date_add", input="2026-01-30", args={"days": 3}) == "2026-02-02"


def test_formulas() -> None:
    assert (
        evaluate_formula("(price * qty) - discount", {"price": "10", "qty": 3, "discount": 5}) == 25
    )
    assert evaluate_formula("concat(upper(a), '-', b)", {"a": "x", "b": 1}) == "X-1.0"
    assert evaluate_formula("if_else(score > 50, 'hot', 'cold')", {"score": 70}) == "hot"


@pytest.mark.parametrize(
    "formula",
    [
        "__import__('os')",
        "a.__class__",
        "open('x')",
        "2 ** 1000",
        "1 / 0",
        "[x for x in y]",
        "nope + 1",
    ],
)
def test_unsafe_or_bad_formulas_are_refused(formula: str) -> None:
    with pytest.raises(InvalidArgument):
        evaluate_formula(formula, {"a": 1, "y": [1]})

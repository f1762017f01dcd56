"""Hostile templates render harmlessly or are refused with a clear error, never run code."""

from __future__ import annotations

from typing import Any

import pytest

from crmflow.errors import InvalidArgument
from crmflow.tokens import (
    MAX_TEMPLATE_CHARS,
    MAX_TOKENS,
    TemplateError,
    build_context,
    lookup,
    parse,
    render,
)


class Secret:
    password = "hunter2"

    def __str__(self) -> str:  # must never be called by the renderer
        raise AssertionError("renderer called __str__ on an object")


@pytest.fixture
def ctx() -> dict[str, Any]:
    c = build_context(object_type="contact", record={"firstname": "ann", "obj": Secret()})
    c["secret"] = Secret()
    return c


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{{ ''.__class__ }}", "starts with a name"),
        ("{{ \"\".__class__.__mro__ }}", "starts with a name"),
        ("{{ __import__ }}", "'__'"),
        ("{{ __import__('os').system('id') }}", "unexpected '('"),
        ("{{ contact.__class__ }}", "'__'"),
        ("{{ contact.firstname.__len__ }}", "'__'"),
        ("{{ contact.firstname() }}", "unexpected '('"),
        ("{{ contact['firstname'] }}", "unexpected '['"),
        ("{{ 7*7 }}", "unexpected '*'"),
        ("{{ contact.firstname + 1 }}", "unexpected '+'"),
        ("{{ contact.firstname if 1 else 2 }}", "expected '|'"),
        ("{{ {{ contact.firstname }} }}", "nested"),
        ("{{{ contact.firstname }}}", "unexpected '{'"),
        ("{{ contact.firstname", "never closed"),
        ("{{ contact.firstname | system: 'id' }}", "unknown filter"),
        ("{{ contact.firstname | truncate }}", "argument"),
        ("{{ contact.firstname | truncate: 'x' }}", "bad argument"),
        ("{{ contact.created | date: '%s%n' }}", "unsupported format"),
        ("{{ }}", "starts with a name"),
        ("{{ contact. }}", "followed by a name"),
        ("{{ contact.firstname | }}", "followed by a filter"),
    ],
)
def test_refused_with_a_clear_error(ctx: dict[str, Any], text: str, reason: str) -> None:
    with pytest.raises(TemplateError) as err:
        render(text, ctx)
    assert reason in str(err.value)
    # An InvalidArgument: the gRPC layer maps it to INVALID_ARGUMENT naming the field.
    assert isinstance(err.value, InvalidArgument)
    assert err.value.violations


@pytest.mark.parametrize(
    "text",
    [
        "{0.__class__}",
        "{0.__class__.__init__.__globals__}",
        "%(password)s %s %r",
        "{contact.firstname}",
        "${contact.firstname} #{1+1} <%= 7*7 %>",
    ],
)
def test_format_string_tricks_are_plain_text(ctx: dict[str, Any], text: str) -> None:
    assert render(text, ctx) == text


def test_other_template_languages_are_plain_text(ctx: dict[str, Any]) -> None:
    text = "{% for x in secret %}{{ x.password }}{% endfor %}"
    assert render(text, ctx) == "{% for x in secret %}{% endfor %}"


def test_objects_in_the_data_are_unreachable(ctx: dict[str, Any]) -> None:
    # A path into a Python object reads nothing: only dict keys and list indices are walked.
    assert render("{{ secret.password }}", ctx) == ""
    assert render("{{ contact.obj }}", ctx) == ""
    assert render("{{ contact.obj.password }}", ctx) == ""
    assert lookup({"a": "text"}, ("a", "upper")) is not None  # str has no keys: missing
    assert render("{{ contact.firstname.upper }}", ctx) == ""


def test_dict_subclasses_are_not_walked() -> None:
    class Sneaky(dict[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise AssertionError("custom __getitem__ called")

    ctx = {"record": Sneaky(a=1)}
    assert render("{{ record.a }}", ctx) == ""


def test_values_are_never_reinterpreted_as_templates() -> None:
    ctx = build_context(object_type="contact", record={"firstname": "{{ contact.secret }}{0}"})
    ctx["contact"]["secret"] = "s3cr3t"
    assert render("{{ contact.firstname }}", ctx) == "{{ contact.secret }}{0}"


def test_huge_repetition_is_refused_or_bounded() -> None:
    ctx = build_context(object_type="contact", record={"x": "y" * 90_000})
    with pytest.raises(TemplateError, match="longer than"):
        parse("a" * (MAX_TEMPLATE_CHARS + 1))
    with pytest.raises(TemplateError, match="more than"):
        parse("{{ contact.x }}" * (MAX_TOKENS + 1))
    # Within the limits, the output is still capped.
    out = render("{{ contact.x }}" * MAX_TOKENS, ctx)
    assert len(out) == 100_000
    with pytest.raises(TemplateError, match="at most"):
        parse("{{ contact.x" + " | upcase" * 11 + " }}")
    with pytest.raises(TemplateError, match="deep"):
        parse("{{ " + ".".join(["a"] * 13) + " }}")


def test_huge_filter_arguments_are_bounded() -> None:
    ctx = build_context(object_type="contact", record={"x": "abc", "n": 1.5})
    assert render("{{ contact.x | truncate: 999999999999 }}", ctx) == "abc"
    assert render("{{ contact.n | number: 999999 }}", ctx) == "1.5000000000"
    assert render("{{ contact.n | round: 99999 }}", ctx) == "1.5"


def test_long_quoted_braces_inside_arguments_do_not_close_the_token() -> None:
    ctx = build_context(object_type="contact", record={})
    assert render("{{ contact.x | default: \"}} {{\" }}", ctx) == "}} {{"

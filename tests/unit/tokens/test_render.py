"""Rendering: lookups, filters, escaping modes, missing data, typed single-token values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crmflow.tokens import (
    Escape,
    build_context,
    is_unknown,
    parse,
    render,
    render_template,
    resolve_value,
    unknown,
)


@pytest.fixture
def ctx() -> dict[str, Any]:
    return build_context(
        object_type="contact",
        record={
            "firstname": "ann",
            "lastname": "",
            "amount": 1234.5,
            "count": 3,
            "vip": True,
            "created": "2024-03-05T10:20:30Z",
            "birthday": "1990-12-24",
            "tags": ["a", "b", "c"],
            "bio": "<b>Tom & \"Jerry\"</b>",
        },
        sources={"company": {"domain": "acme.io", "name": "Acme"}, "nothing": None},
        actions={"a1": {"score": 42, "items": [{"sku": "X1"}]}},
        event={"page": "/pricing"},
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi {{ contact.firstname }}!", "Hi ann!"),
        ("Hi {{record.firstname}}!", "Hi ann!"),  # record is an alias of the object type
        ("{{ contact.firstname | upcase }}", "ANN"),
        ("{{ contact.firstname | capitalize }}", "Ann"),
        ("{{ sources.company.name | downcase }}", "acme"),
        ("{{ contact.lastname | default: \"there\" }}", "there"),  # empty -> default
        ("{{ contact.missing | default: 'friend' }}", "friend"),
        ("{{ contact.missing | default: 0 }}", "0"),
        ("{{ sources.nothing.name | default: \"n/a\" }}", "n/a"),
        ("{{ contact.firstname | truncate: 2, '' }}", "an"),
        ("{{ contact.bio | truncate: 8 }}", "<b>To..."),
        ("{{ contact.bio | truncate: 6, \"…\" }}", "<b>To…"),
        ("{{ contact.created | date: \"%Y-%m-%d\" }}", "2024-03-05"),
        ("{{ contact.birthday | date: \"%d %B %Y\" }}", "24 December 1990"),
        ("{{ contact.amount | number: 2 }}", "1,234.50"),
        ("{{ contact.amount | number: 2, \".\" }}", "1.234,50"),
        ("{{ contact.amount | round }}", "1234"),
        ("{{ contact.tags | join: \"/\" }}", "a/b/c"),
        ("{{ contact.tags | first }}{{ contact.tags | last }}", "ac"),
        ("{{ contact.tags | size }}", "3"),
        ("{{ contact.vip }}", "true"),
        ("{{ contact.count }}", "3"),
        ("{{ actions.a1.outputs.score }}", "42"),
        ("{{ actions.a1.outputs.items.0.sku }}", "X1"),
        ("{{ event.page | urlencode }}", "%2Fpricing"),
        ("{{ contact.tags | json }}", '["a", "b", "c"]'),
    ],
)
def test_render(ctx: dict[str, Any], text: str, expected: str) -> None:
    assert render(text, ctx) == expected


def test_filters_chain_left_to_right(ctx: dict[str, Any]) -> None:
    assert render("{{ contact.missing | default: 'abc' | upcase | truncate: 2, '' }}", ctx) == "AB"


def test_missing_without_default_renders_empty_and_is_reported(ctx: dict[str, Any]) -> None:
    res = render_template(parse("Hi {{ contact.nope }} at {{ sources.nothing.name }}."), ctx)
    assert res.text == "Hi  at ."
    assert res.missing == ["contact.nope", "sources.nothing.name"]
    assert render("[{{ contact.nope }}]", ctx, missing_text="?") == "[?]"


def test_filters_on_bad_data_never_raise(ctx: dict[str, Any]) -> None:
    assert render("{{ contact.firstname | date: \"%Y\" }}", ctx) == ""
    assert render("{{ contact.firstname | number: 2 }}", ctx) == ""
    assert render("{{ contact.firstname | number: 2 | default: 'x' }}", ctx) == "x"
    assert render("{{ contact.firstname.deeper.still }}", ctx) == ""
    assert render("{{ contact.tags.9 }}", ctx) == ""


def test_html_escaping(ctx: dict[str, Any]) -> None:
    out = render("<p>{{ contact.bio }}</p>", ctx, escape=Escape.HTML)
    assert out == "<p>&lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;/b&gt;</p>"


def test_json_escaping_keeps_the_body_valid(ctx: dict[str, Any]) -> None:
    body = '{"bio": "{{ contact.bio }}", "tags": {{ contact.tags | json }}, "n": "{{ x.y }}"}'
    out = render(body, ctx, escape="json")
    assert json.loads(out) == {"bio": '<b>Tom & "Jerry"</b>', "tags": ["a", "b", "c"], "n": ""}
    hostile = build_context(object_type="contact", record={"firstname": '", "admin": true, "x": "'})
    out = render('{"name": "{{ contact.firstname }}"}', hostile, escape="json")
    assert json.loads(out) == {"name": '", "admin": true, "x": "'}


def test_single_token_fields_are_typed(ctx: dict[str, Any]) -> None:
    assert resolve_value("{{ contact.amount }}", ctx) == 1234.5
    assert resolve_value("  {{ contact.vip }} ", ctx) is True
    assert resolve_value("{{ contact.tags }}", ctx) == ["a", "b", "c"]
    assert resolve_value("{{ contact.count }} items", ctx) == "3 items"
    assert resolve_value("{{ contact.nope | default: 5 }}", ctx) == 5
    assert resolve_value("no tokens", ctx) == "no tokens"


def test_missing_single_token_is_the_explicit_unknown_value(ctx: dict[str, Any]) -> None:
    value = resolve_value("{{ sources.nothing.domain }}", ctx)
    assert value == unknown("sources.nothing.domain")
    assert is_unknown(value)
    assert not is_unknown({"$unknown": "x", "other": 1})
    assert not is_unknown("$unknown")


def test_output_is_bounded() -> None:
    big = build_context(object_type="contact", record={"x": "a" * 5000})
    res = render_template(parse("{{ contact.x }}" * 100), big, max_output=10_000)
    assert len(res.text) == 10_000
    assert res.truncated


def test_escaped_open_braces_are_literal(ctx: dict[str, Any]) -> None:
    assert render(r"\{{ contact.firstname }} {{ contact.firstname }}", ctx) == (
        "{{ contact.firstname }} ann"
    )
    assert render("}} { } {x}", ctx) == "}} { } {x}"

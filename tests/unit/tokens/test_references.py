"""references(): what a text reads, for editor validation and the data panel."""

from __future__ import annotations

import pytest

from crmflow.tokens import TemplateError, references, references_in


def test_groups_references_by_root() -> None:
    refs = references(
        "Hi {{ contact.firstname | default: 'x' }} from {{ sources.company.domain }}, "
        "score {{ actions.a1.outputs.score }} on {{ event.page }} {{ record.email }} "
        "{{ sources.company.name }}"
    )
    assert refs.objects == {"contact": {"firstname"}, "record": {"email"}}
    assert refs.sources == {"company": {"domain", "name"}}
    assert refs.actions == {"a1": {"score"}}
    assert refs.event == {"page"}
    assert not refs.malformed
    assert len(refs.tokens) == 6


def test_malformed_shapes_are_reported() -> None:
    refs = references("{{ sources.company }} {{ actions.a1.score }} {{ event }} {{ contact }}")
    reasons = [r for _, r in refs.malformed]
    assert reasons == [
        "use sources.<source id>.<property>",
        "use actions.<action id>.outputs.<name>",
        "use event.<property>",
        "use contact.<property>",
    ]


def test_nested_field_values() -> None:
    refs = references_in([{"body": "{{ contact.a }}", "h": [{"v": "{{ sources.s.b }}"}]}, 3])
    assert refs.objects == {"contact": {"a"}}
    assert refs.sources == {"s": {"b"}}


def test_bad_syntax_raises() -> None:
    with pytest.raises(TemplateError):
        references("{{ contact.__dict__ }}")

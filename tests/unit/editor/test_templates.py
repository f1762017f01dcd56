"""The template library is well-formed data."""

from __future__ import annotations

from collections import Counter

from editor_api import graph, templates
from editor_api.plans import Plan
from editor_api.validation import validate

from crmflow.actions.catalogue import default_registry
from crmflow.criteria import OPERATORS


def test_library_has_twenty_structurally_valid_templates_across_categories() -> None:
    lib = templates.library()
    assert len(lib) >= 20
    per_category = Counter(t.category for t in lib.values())
    assert len(per_category) >= 6 and min(per_category.values()) >= 1
    for t in lib.values():
        graph.check_structure(t.definition, field=t.template_id)
        assert t.definition.object_type == t.object_type and t.purpose and t.keywords


def test_template_contents_pass_validation_except_placeholders() -> None:
    reg = default_registry()
    for t in templates.library().values():
        issues = validate(t.definition, registry=reg, plan=Plan("t"))
        unexpected = [i for i in issues if i.code != "placeholder"]
        assert not unexpected, (t.template_id, unexpected)


def test_every_filter_operator_exists() -> None:
    for t in templates.library().values():
        for trig in t.definition.enrollment.triggers:
            if trig.criteria:
                assert {f.operator for f in trig.criteria.filter.filters} <= set(OPERATORS)


def test_template_action_types_are_registered() -> None:
    reg = default_registry()
    missing = sorted(
        {
            (t.template_id, a.action_type)
            for t in templates.library().values()
            for a in t.definition.actions.values()
            if (a.action_type, 1) not in reg
        }
    )
    assert not missing, missing


def test_search_filters() -> None:
    assert all(t.object_type == "ticket" for t in templates.search(object_type="ticket"))
    assert [t.template_id for t in templates.search(query="annual review")] == [
        "renewal-annual-review"
    ]
    assert not templates.search(query="zzzz")

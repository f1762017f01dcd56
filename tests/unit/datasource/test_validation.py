"""validate_references: what editor-api calls with the tenant's properties (no store needed)."""

from __future__ import annotations

from typing import Any

import pytest
from datasource_resolver.validation import reference_errors, validate_references

from crmflow.actions.catalogue import default_registry
from crmflow.errors import InvalidArgument
from crmflow.model.actions import Action, Branch, Connection
from crmflow.model.criteria import FilterGroup
from crmflow.model.data_sources import MAX_DATA_SOURCES, DataSource, DataSourceKind
from crmflow.model.default_sources import default_data_sources, with_defaults
from crmflow.model.triggers import EventTrigger, EventType, Trigger
from crmflow.model.workflow import WorkflowDefinition

PROPS = {
    "contact": ["firstname", "email", "city"],
    "company": ["name", "domain"],
    "deal": ["amount", "dealname"],
    "ticket": ["subject"],
}


def _wf(fields: dict[str, object], **kw: object) -> WorkflowDefinition:
    return WorkflowDefinition(
        object_type="contact",
        start_action_id="a1",
        actions={
            "a1": Action(
                action_id="a1",
                action_type="custom_code",
                fields={"outputs": {"score": "number"}},
                connection=Connection(next_action_id="a2"),
            ),
            "a2": Action(action_id="a2", action_type="send_email", fields=fields),
        },
        data_sources=default_data_sources("contact"),
        **kw,  # type: ignore[arg-type]
    )


def _errors(wf: WorkflowDefinition) -> list[tuple[str, str]]:
    return [
        (v.field, v.description) for v in reference_errors(wf, PROPS, default_registry()).violations
    ]


def test_valid_references_pass_and_are_counted() -> None:
    wf = _wf(
        {
            "s": "{{ contact.firstname }} {{ record.email }} {{ sources.company.domain }}",
            "b": ["{{ actions.a1.outputs.score }}", {"x": "{{ sources.deal.amount }}"}],
        }
    )
    assert validate_references(wf, PROPS) == 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "{{ sources.compny.name }}",
            "unknown data source 'compny' (known: company, deal, ticket)",
        ),
        ("{{ sources.company.revenue }}", "unknown property 'revenue' of data source 'company'"),
        ("{{ contact.shoesize }}", "unknown property 'shoesize' of contact"),
        ("{{ record.shoesize }}", "unknown property 'shoesize' of contact"),
        ("{{ deal.amount }}", "unknown token root 'deal'"),
        ("{{ actions.zz.outputs.x }}", "unknown action 'zz'"),
        ("{{ actions.a1.outputs.grade }}", "unknown output 'grade' of action 'a1' (known: score)"),
        ("{{ actions.a1.score }}", "use actions.<action id>.outputs.<name>"),
        ("{{ event.page }}", "need a custom-event or form-submission trigger"),
        ("{{ contact.__class__ }}", "names starting with '__' are not allowed"),
        ("{{ contact.firstname | shout }}", "unknown filter 'shout'"),
    ],
)
def test_each_unknown_is_named(text: str, expected: str) -> None:
    errs = _errors(_wf({"body": text}))
    assert len(errs) == 1, errs
    field, desc = errs[0]
    assert field == "actions.a2.fields.body"
    assert expected in desc


def test_outputs_of_later_actions_are_refused() -> None:
    wf = _wf({"body": "x"})
    wf.actions["a1"].fields["note"] = "{{ actions.a2.outputs.x }}"
    assert _errors(wf) == [("actions.a1.fields.note", "action 'a2' does not run before 'a1'")]


def test_branch_paths_see_the_actions_before_the_branch() -> None:
    wf = WorkflowDefinition(
        object_type="contact",
        start_action_id="hook",
        actions={
            "hook": Action(
                action_id="hook",
                action_type="webhook",
                connection=Connection(next_action_id="br"),
            ),
            "br": Action(
                action_id="br",
                action_type="if_then",
                branches=[
                    Branch(
                        branch_id="yes",
                        criteria=FilterGroup(),
                        connection=Connection(next_action_id="y"),
                    )
                ],
                default_connection=Connection(next_action_id="n"),
            ),
            "y": Action(
                action_id="y",
                action_type="x",
                fields={"v": "{{ actions.hook.outputs.status_code }}"},
            ),
            "n": Action(
                action_id="n", action_type="x", fields={"v": "{{ actions.y.outputs.anything }}"}
            ),
        },
    )
    assert _errors(wf) == [("actions.n.fields.v", "action 'y' does not run before 'n'")]


def test_event_properties_with_a_custom_event_trigger() -> None:
    wf = _wf({"body": "{{ event.page }}"})
    wf.enrollment.triggers.append(
        Trigger(event=EventTrigger(event_type=EventType.CUSTOM_EVENT, event_name="viewed"))
    )
    assert _errors(wf) == []


def test_data_source_properties_are_checked() -> None:
    wf = _wf({"body": "x"})
    wf.data_sources.append(
        DataSource(
            source_id="bad",
            kind=DataSourceKind.PROPERTY_MATCH,
            object_type="company",
            property="domian",
            enrolled_property="mail",
        )
    )
    wf.data_sources.append(
        DataSource(source_id="ghost", kind=DataSourceKind.ASSOCIATED, object_type="spaceship")
    )
    errs = dict(_errors(wf))
    assert errs["data_sources[3].property"].startswith("unknown property 'domian' of company")
    assert errs["data_sources[3].enrolled_property"] == "unknown property 'mail' of contact"
    assert errs["data_sources[4].object_type"] == "unknown object type 'spaceship'"


def test_validate_raises_one_invalid_argument_with_every_violation() -> None:
    wf = _wf({"a": "{{ sources.nope.x }}", "b": "{{ contact.nope }}"})
    with pytest.raises(InvalidArgument) as err:
        validate_references(wf, PROPS)
    assert {v.field for v in err.value.violations} == {"actions.a2.fields.a", "actions.a2.fields.b"}
    assert "(and 1 more)" in str(err.value)


def test_defaults_per_object_type_and_with_defaults() -> None:
    assert [s.source_id for s in default_data_sources("contact")] == ["company", "deal", "ticket"]
    assert [s.source_id for s in default_data_sources("company")] == ["contact", "deal"]
    assert [s.source_id for s in default_data_sources("deal")] == ["company", "contact"]
    assert [s.source_id for s in default_data_sources("ticket")] == ["company", "contact"]
    assert default_data_sources("listing") == []
    assert all(s.is_default for s in default_data_sources("contact"))
    mine = DataSource(source_id="company", kind=DataSourceKind.ASSOCIATED, object_type="company",
                      association_label="billing")  # fmt: skip
    wf = with_defaults(WorkflowDefinition(object_type="contact", data_sources=[mine]))
    assert [s.source_id for s in wf.data_sources] == ["company", "deal", "ticket"]
    assert wf.data_sources[0].association_label == "billing"  # the user's source is kept
    full = WorkflowDefinition(
        object_type="contact",
        data_sources=[
            DataSource(source_id=f"s{i}", kind=DataSourceKind.ASSOCIATED, object_type="deal")
            for i in range(MAX_DATA_SOURCES)
        ],
    )
    assert len(with_defaults(full).data_sources) == MAX_DATA_SOURCES


def test_a_51st_data_source_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        WorkflowDefinition(
            object_type="contact",
            data_sources=[
                DataSource(source_id=f"s{i}", kind=DataSourceKind.ASSOCIATED, object_type="deal")
                for i in range(MAX_DATA_SOURCES + 1)
            ],
        )


def _viewed_definition() -> Any:
    from crmflow.records.port import EventDefinition, PropertyDefinition, PropertyType

    return EventDefinition(
        name="viewed",
        object_type="contact",
        properties=[
            PropertyDefinition(object_type="contact", name="page", type=PropertyType.STRING),
            PropertyDefinition(object_type="contact", name="seconds", type=PropertyType.NUMBER),
        ],
    )


def _custom(name: str) -> Trigger:
    return Trigger(event=EventTrigger(event_type=EventType.CUSTOM_EVENT, event_name=name))


def test_event_properties_are_checked_against_the_event_definition() -> None:
    wf = _wf({"body": "{{ event.page }} {{ event.seconds }} {{ event.colour }}"})
    wf.enrollment.triggers.append(_custom("viewed"))
    events = {"viewed": _viewed_definition()}
    violations = [
        (v.field, v.description)
        for v in reference_errors(wf, PROPS, default_registry(), events).violations
    ]
    assert violations == [
        (
            "actions.a2.fields.body",
            "unknown property 'colour' of event 'viewed' (known: page, seconds)",
        )
    ]
    with pytest.raises(InvalidArgument):
        validate_references(wf, PROPS, events=events)
    # Without the definition the event is free-form, as before.
    assert _errors(wf) == []


def test_an_undefined_triggering_event_keeps_event_tokens_open() -> None:
    wf = _wf({"body": "{{ event.colour }}"})
    wf.enrollment.triggers += [_custom("viewed"), _custom("clicked")]
    events = {"viewed": _viewed_definition()}
    assert reference_errors(wf, PROPS, default_registry(), events).violations == []
    # A form-submission trigger too: forms carry whatever their fields are.
    wf.enrollment.triggers[-1] = Trigger(
        event=EventTrigger(event_type=EventType.FORM_SUBMITTED, form_id="f")
    )
    assert reference_errors(wf, PROPS, default_registry(), events).violations == []
    wf.enrollment.triggers.pop()
    assert [
        v.field for v in reference_errors(wf, PROPS, default_registry(), events).violations
    ] == ["actions.a2.fields.body"]

"""The data panel without a store: property mappings in, typed insertable fields out."""

from __future__ import annotations

from datasource_resolver.fields import insertable_fields
from datasource_resolver.outputs import output_schema, predecessors

from crmflow.actions.catalogue import default_registry
from crmflow.model.actions import Action, Connection
from crmflow.model.criteria import PropertyFilter
from crmflow.model.default_sources import default_data_sources
from crmflow.model.triggers import EventTrigger, EventType, Trigger
from crmflow.model.workflow import WorkflowDefinition
from crmflow.records.port import PropertyDefinition, PropertyType


def _p(ot: str, name: str, t: PropertyType, *options: str) -> PropertyDefinition:
    return PropertyDefinition(
        object_type=ot, name=name, type=t, label=name.title(), options=list(options)
    )


PROPS = {
    "contact": [
        _p("contact", "firstname", PropertyType.STRING),
        _p("contact", "stage", PropertyType.ENUMERATION, "lead", "customer"),
    ],
    "company": [_p("company", "domain", PropertyType.STRING)],
    "deal": [_p("deal", "amount", PropertyType.NUMBER)],
}


def _wf() -> WorkflowDefinition:
    return WorkflowDefinition(
        object_type="contact",
        start_action_id="code",
        actions={
            "code": Action(
                action_id="code",
                action_type="custom_code",
                label="Score",
                fields={"outputs": [{"name": "score", "type": "number"}, {"name": "tier"}]},
                connection=Connection(next_action_id="hook"),
            ),
            "hook": Action(
                action_id="hook",
                action_type="webhook",
                connection=Connection(next_action_id="mail"),
            ),
            "mail": Action(action_id="mail", action_type="send_email"),
        },
        data_sources=default_data_sources("contact"),
    )


def test_fields_by_group_with_types() -> None:
    wf = _wf()
    wf.enrollment.triggers.append(
        Trigger(
            event=EventTrigger(
                event_type=EventType.CUSTOM_EVENT,
                event_name="viewed",
                event_filters=[PropertyFilter(property="page", operator="eq", value="/")],
            )
        )
    )
    got = {
        f.path: (f.type, f.group)
        for f in insertable_fields(wf, PROPS, default_registry(), action_id="mail")
    }
    assert got == {
        "contact.firstname": ("string", "enrolled_record"),
        "contact.stage": ("enumeration", "enrolled_record"),
        "sources.company.domain": ("string", "data_source"),
        "sources.deal.amount": ("number", "data_source"),
        "actions.code.outputs.score": ("number", "action_output"),
        "actions.code.outputs.tier": ("any", "action_output"),
        "actions.hook.outputs.status_code": ("number", "action_output"),
        "actions.hook.outputs.body": ("any", "action_output"),
        "actions.hook.outputs.headers": ("object", "action_output"),
        "event.page": ("string", "event"),
    }  # "ticket" source: no ticket properties given, so nothing listed for it


def test_options_labels_and_tokens() -> None:
    fields = {f.path: f for f in insertable_fields(_wf(), PROPS, default_registry())}
    assert fields["contact.stage"].options == ["lead", "customer"]
    assert fields["sources.company.domain"].label == "Primary associated company: Domain"
    assert fields["contact.firstname"].token == "{{ contact.firstname }}"
    assert not any(f.group == "action_output" for f in fields.values())  # no action given


def test_predecessors_in_graph_order() -> None:
    assert predecessors(_wf(), "mail") == ["code", "hook"]
    assert predecessors(_wf(), "code") == []


def test_output_schema_sources() -> None:
    reg = default_registry()
    assert output_schema(Action(action_id="x", action_type="delay"), reg) is None
    assert output_schema(
        Action(action_id="x", action_type="format_data", fields={"outputs": {"total": "number"}}),
        reg,
    ) == {"total": "number"}
    assert output_schema(Action(action_id="x", action_type="format_data"), reg) == {"result": "any"}


def test_a_defined_event_lists_its_properties_with_their_real_types() -> None:
    from crmflow.records.port import EventDefinition

    wf = _wf()
    wf.enrollment.triggers += [
        Trigger(
            event=EventTrigger(
                event_type=EventType.CUSTOM_EVENT,
                event_name="viewed",
                # the filter's operand is a string; the definition says number, and wins
                event_filters=[PropertyFilter(property="seconds", operator="eq", value="5")],
            )
        ),
        Trigger(
            event=EventTrigger(
                event_type=EventType.CUSTOM_EVENT,
                event_name="clicked",  # no definition: guessed from its filter, as before
                event_filters=[PropertyFilter(property="button", operator="eq", value="buy")],
            )
        ),
    ]
    viewed = EventDefinition(
        name="viewed",
        object_type="contact",
        properties=[
            _p("contact", "seconds", PropertyType.NUMBER),
            _p("contact", "plan", PropertyType.ENUMERATION, "free", "pro"),
        ],
    )
    fields = {
        f.path: f
        for f in insertable_fields(wf, PROPS, default_registry(), events={"viewed": viewed})
        if f.group == "event"
    }
    assert {p: (f.type, f.label) for p, f in fields.items()} == {
        "event.seconds": ("number", "Event: Seconds"),
        "event.plan": ("enumeration", "Event: Plan"),
        "event.button": ("string", "Event: button"),
    }
    assert fields["event.plan"].options == ["free", "pro"]
    # Without definitions: today's inference from the filters.
    inferred = {
        f.path: f.type
        for f in insertable_fields(wf, PROPS, default_registry())
        if f.group == "event"
    }
    assert inferred == {"event.seconds": "string", "event.button": "string"}

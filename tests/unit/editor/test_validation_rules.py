"""Validation rules that are easiest to pin down without a server."""

from __future__ import annotations

from editor_api import naming
from editor_api.plans import Plan
from editor_api.validation import validate

from crmflow.actions.catalogue import default_registry
from crmflow.model.actions import Action, Branch, Connection, EdgeType
from crmflow.model.data_sources import DataSource, DataSourceKind
from crmflow.model.workflow import WorkflowDefinition

REG = default_registry()


def codes(
    d: WorkflowDefinition, plan: Plan | None = None, props: dict | None = None
) -> set[tuple[str, str]]:
    return {
        (i.action_id, i.code)
        for i in validate(d, registry=REG, plan=plan or Plan("t"), properties=props)
    }


def sp(aid: str, nxt: str = "", goto: bool = False, **fields: object) -> Action:
    conn = (
        Connection(next_action_id=nxt, edge_type=EdgeType.GOTO if goto else EdgeType.STANDARD)
        if nxt
        else None
    )
    return Action(
        action_id=aid,
        action_type="set_property",
        fields={"property": "firstname", "value": "v", **fields},
        connection=conn,
    )


def defn(*actions: Action, **kw: object) -> WorkflowDefinition:
    return WorkflowDefinition(
        object_type="contact",
        start_action_id=actions[0].action_id,
        actions={a.action_id: a for a in actions},
        **kw,
    )


def test_goto_loop_without_delay_and_self_loop() -> None:
    assert ("b", "goto_loop_without_delay") in codes(defn(sp("a", "b"), sp("b", "a", goto=True)))
    assert ("a", "goto_loop_without_delay") in codes(defn(sp("a", "a", goto=True)))
    delay = Action(
        action_id="d",
        action_type="delay",
        fields={"seconds": 5},
        connection=Connection(next_action_id="a", edge_type=EdgeType.GOTO),
    )
    assert not codes(defn(sp("a", "d"), delay))


def test_tokens_need_existing_sources_and_actions() -> None:
    src = DataSource(source_id="co", kind=DataSourceKind.ASSOCIATED, object_type="company")
    ok = defn(
        sp("a", "b", value="{{ sources.co.name }}"),
        sp("b", value="{{ actions.a.outputs.x }}"),
        data_sources=[src],
    )
    assert not codes(ok)
    bad = defn(sp("a", value="{{sources.old.name}} and {{ actions.gone.outputs.y }}"))
    assert codes(bad) == {("a", "deleted_data_source"), ("a", "deleted_action_output")}
    # With property definitions the token's property is checked against the source's type.
    props = {"contact": {"firstname"}, "company": {"domain"}}
    assert ("a", "unknown_property") in codes(ok, props=props)


def test_token_syntax_roots_and_record_properties() -> None:
    props = {"contact": {"firstname"}}
    d = defn(sp("a", value="Hi {{ record.firstname }} {{ contact.nope }}"))
    assert codes(d, props=props) == {("a", "unknown_property")}
    assert ("a", "invalid_token") in codes(defn(sp("a", value="{{ deal.amount }}")))
    assert ("a", "invalid_token") in codes(defn(sp("a", value="{{ actions.x.score }}")))
    assert ("a", "invalid_token") in codes(defn(sp("a", value="{{ record.firstname ")))


def test_outputs_must_come_from_upstream_actions_and_workflow_refs_exist() -> None:
    d = defn(
        sp("a", "b", value="{{ actions.b.outputs.x }}"), sp("b", value="{{ actions.a.outputs.y }}")
    )
    assert codes(d) == {("a", "output_not_upstream")}
    d.enrollment.unenroll_from_workflow_ids = ["wf_gone", "wf_here"]
    issues = validate(d, registry=REG, plan=Plan("t"), known_workflows={"wf_here"})
    assert [(i.code, i.field) for i in issues if i.code == "unknown_workflow"] == [
        ("unknown_workflow", "enrollment.unenroll_from_workflow_ids")
    ]


def test_branch_limits_and_random_split_sum() -> None:
    crit = {"filters": [{"property": "firstname", "operator": "is_known"}]}
    many = Action(
        action_id="v",
        action_type="value_equals",
        fields={"property": "firstname"},
        branches=[Branch(branch_id=f"b{i}", values=[str(i)]) for i in range(251)],
    )
    assert ("v", "branch_limit") in codes(defn(many))
    ok = Action(
        action_id="i",
        action_type="if_then",
        branches=[
            Branch.model_validate({"branch_id": f"b{i}", "criteria": crit}) for i in range(20)
        ],
    )
    assert not codes(defn(ok))
    split = Action(
        action_id="r",
        action_type="random_split",
        branches=[Branch(branch_id="x", percentage=50), Branch(branch_id="y", percentage=50)],
    )
    assert not codes(defn(split))
    split.branches[1].percentage = 40
    assert ("r", "random_split_sum") in codes(defn(split))


def test_locked_by_plan_and_unknown_object_type() -> None:
    plan = Plan(
        "t",
        plan_name="starter",
        locked_action_types=frozenset({"set_property"}),
        unrestricted=False,
    )
    assert ("a", "locked_by_plan") in codes(defn(sp("a")), plan=plan)
    assert codes(defn(sp("a")), props={"contact": None}) == {("", "unknown_object_type")}


def test_generated_name_is_deterministic() -> None:
    d = defn(sp("a", "b"), Action(action_id="b", action_type="delay", fields={"seconds": 86400}))
    first = naming.generate(d, REG)
    assert first == naming.generate(d.model_copy(deep=True), REG)
    assert first[0].startswith("Contact workflow") and "Delay" in first[1]


def test_enrolled_in_workflow_filters_are_workflow_references() -> None:
    from editor_api.validation import referenced_workflows

    from crmflow.model.criteria import FilterGroup

    ef = {"workflow_id": "wf_a", "condition": "ENROLLMENT_CONDITION_HAS_BEEN_ENROLLED"}
    d = defn(sp("a"))
    d.enrollment = d.enrollment.model_validate(
        {
            "triggers": [{"criteria": {"filter": {"groups": [{"enrollment_filters": [ef]}]}}}],
            "goal": {"enrollment_filters": [{**ef, "workflow_id": "wf_b"}]},
        }
    )
    assert referenced_workflows(d) == {"wf_a", "wf_b"}
    issues = validate(d, registry=REG, plan=Plan("t"), known_workflows={"wf_b"})
    assert [(i.code, i.field) for i in issues] == [
        (
            "unknown_workflow",
            "enrollment.triggers[0].criteria.filter.groups[0].enrollment_filters[0].workflow_id",
        )
    ]
    d.actions["a"].branches = [
        Branch(
            branch_id="x",
            criteria=FilterGroup.model_validate(
                {"enrollment_filters": [{**ef, "workflow_id": "wf_c"}]}
            ),
        )
    ]
    assert referenced_workflows(d) == {"wf_a", "wf_b", "wf_c"}
    issues = validate(d, registry=REG, plan=Plan("t"), known_workflows={"wf_a", "wf_b"})
    assert [(i.action_id, i.code, i.field) for i in issues] == [
        ("a", "unknown_workflow", "branches[0].criteria.enrollment_filters[0].workflow_id")
    ]
    # With the object type each enrolls: a reference across types could never apply.
    known = {"wf_a": "contact", "wf_b": "deal", "wf_c": "contact"}
    issues = validate(d, registry=REG, plan=Plan("t"), known_workflows=known)
    assert [(i.action_id, i.code, i.field) for i in issues] == [
        ("", "workflow_object_type_mismatch", "enrollment.goal.enrollment_filters[0].workflow_id")
    ]
    d.enrollment.unenroll_from_workflow_ids = ["wf_b"]
    d.actions["b"] = Action(
        action_id="b", action_type="enroll_in_workflow", fields={"workflow_id": "wf_b"}
    )
    d.actions["a"].connection = Connection(next_action_id="b")
    issues = validate(d, registry=REG, plan=Plan("t"), known_workflows=known)
    assert {
        (i.action_id, i.field) for i in issues if i.code == "workflow_object_type_mismatch"
    } == {
        ("", "enrollment.goal.enrollment_filters[0].workflow_id"),
        ("", "enrollment.unenroll_from_workflow_ids"),
        ("b", "fields.workflow_id"),
    }


def _event_defn(*triggers: object, field: str = "Plan: {{ event.plan }}") -> WorkflowDefinition:
    from crmflow.model.triggers import EnrollmentSettings, Trigger

    return defn(
        sp("a", value=field),
        enrollment=EnrollmentSettings(triggers=[Trigger(event=t) for t in triggers]),  # type: ignore[arg-type]
    )


def test_event_tokens_need_an_event_with_properties_and_a_defined_property() -> None:
    from crmflow.model.triggers import EventTrigger, EventType
    from crmflow.records.port import EventDefinition, PropertyDefinition, PropertyType

    upgraded = EventTrigger(event_type=EventType.CUSTOM_EVENT, event_name="upgraded")
    definition = EventDefinition(
        name="upgraded",
        object_type="contact",
        properties=[
            PropertyDefinition(object_type="contact", name="plan", type=PropertyType.STRING)
        ],
    )
    events = {"upgraded": definition}

    def event_codes(d: WorkflowDefinition, ev: dict | None) -> set[tuple[str, str]]:
        issues = validate(d, registry=REG, plan=Plan("t"), events=ev)
        return {(i.action_id, i.code) for i in issues}

    # No trigger whose event carries properties: any {{ event.x }} is refused.
    assert ("a", "invalid_token") in event_codes(defn(sp("a", value="{{ event.plan }}")), events)
    # A defined custom event: its properties are accepted, others refused by name.
    assert event_codes(_event_defn(upgraded), events) == set()
    wrong = _event_defn(upgraded, field="{{ event.tier }}")
    assert ("a", "unknown_event_property") in event_codes(wrong, events)
    msg = [i.message for i in validate(wrong, registry=REG, plan=Plan("t"), events=events)]
    assert any("'tier'" in m for m in msg)
    # Without a definition (or with a form trigger beside it) the names stay free-form.
    assert event_codes(_event_defn(upgraded, field="{{ event.tier }}"), {}) == set()
    form = EventTrigger(event_type=EventType.FORM_SUBMITTED)
    assert event_codes(_event_defn(upgraded, form, field="{{ event.tier }}"), events) == set()
    # No CRM answer (None): the property check is skipped, not failed.
    assert event_codes(wrong, None) == set()
    # The trigger's own filters may only name the defined event's properties.
    from crmflow.model.criteria import PropertyFilter

    filtered = upgraded.model_copy(
        update={
            "event_filters": [
                PropertyFilter(property="plan", operator="eq", value="pro"),
                PropertyFilter(property="seats", operator="gt", value=3),
            ]
        }
    )
    issues = validate(_event_defn(filtered), registry=REG, plan=Plan("t"), events=events)
    assert [(i.code, i.field) for i in issues] == [
        ("unknown_event_property", "enrollment.triggers[0].event.event_filters[1].property")
    ]
    assert validate(_event_defn(filtered), registry=REG, plan=Plan("t"), events={}) == []

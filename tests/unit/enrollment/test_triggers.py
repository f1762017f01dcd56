"""Every trigger kind: criteria transitions, events with refinements, manual, dedupe."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from crmflow.errors import InvalidArgument
from crmflow.model.records import ChangeEventType
from tests.unit.enrollment.conftest import T0, Core

LEAD = {"property": "lifecyclestage", "operator": "eq", "value": "lead"}
DK = {"property": "country", "operator": "eq", "value": "DK"}


def crit(*filters: dict, conj: str = "CONJUNCTION_AND") -> dict:
    return {"criteria": {"filter": {"conjunction": conj, "filters": list(filters)}}}


async def test_criteria_enrolls_on_transition_only(core: Core) -> None:
    await core.publish("wf", {"triggers": [crit(LEAD, DK)]})
    # DK already, becomes a lead: enrolls
    ev = core.event(
        "c1",
        {"lifecyclestage": ("subscriber", "lead")},
        snapshot={"lifecyclestage": "lead", "country": "DK"},
    )
    assert await core.ingest(ev) == [("wf", "enrolled")]
    # another record already matching, an unrelated property changes: no transition
    ev = core.event(
        "c2",
        {"city": ("A", "B")},
        snapshot={"lifecyclestage": "lead", "country": "DK", "city": "B"},
    )
    assert await core.ingest(ev) == []
    # the change does not complete the criteria: nothing
    ev = core.event(
        "c3",
        {"lifecyclestage": ("subscriber", "lead")},
        snapshot={"lifecyclestage": "lead", "country": "SE"},
    )
    assert await core.ingest(ev) == []
    # a record created matching enrolls (it matched nothing before it existed)
    ev = core.event(
        "c4",
        {"lifecyclestage": (None, "lead"), "country": (None, "DK")},
        kind=ChangeEventType.RECORD_CREATED,
        snapshot={"lifecyclestage": "lead", "country": "DK"},
    )
    assert await core.ingest(ev) == [("wf", "enrolled")]
    assert core.starter.started() == [
        f"enroll/{core.tenant}/wf/contact-c1/1",
        f"enroll/{core.tenant}/wf/contact-c4/1",
    ]


async def test_criteria_reads_the_crm_when_the_event_has_no_snapshot(core: Core) -> None:
    await core.publish("wf", {"triggers": [crit(LEAD, DK)]})
    await core.records.create(
        core.tenant, "contact", {"lifecyclestage": "lead", "country": "DK"}, record_id="c1"
    )
    ev = core.event("c1", {"lifecyclestage": ("subscriber", "lead")})  # changes only
    assert await core.ingest(ev) == [("wf", "enrolled")]


async def test_criteria_use_the_snapshot_the_crm_outbox_sends(core: Core) -> None:
    """The embedded CRM's events carry the record after the change: enrollment evaluates that
    state (as of the event), not the CRM's current copy, which has moved on meanwhile."""
    from crmflow.records.outbox import OutboxDispatcher

    await core.publish("wf", {"triggers": [crit(LEAD, DK)]})
    c = await core.records.create(
        core.tenant, "contact", {"lifecyclestage": "subscriber", "country": "DK"}
    )
    await core.records.update(core.tenant, "contact", c.record_id, {"lifecyclestage": "lead"})
    await core.records.update(core.tenant, "contact", c.record_id, {"country": "SE"})

    async def nowhere(events: object) -> None:
        raise AssertionError("not delivered here")

    created, became_lead, moved = await OutboxDispatcher(core.records, nowhere).pending(core.tenant)
    assert created.properties["country"] == "DK" and "createdate" in created.properties
    assert became_lead.properties["lifecyclestage"] == "lead"
    assert became_lead.properties["country"] == "DK"  # as of that change
    assert moved.properties["country"] == "SE"
    assert await core.ingest(created) == []
    # the CRM's copy (country SE) would not match: only the snapshot explains the enrollment
    assert await core.ingest(became_lead) == [("wf", "enrolled")]
    assert await core.ingest(moved) == []


async def test_or_criteria_and_other_object_types(core: Core) -> None:
    await core.publish("wf", {"triggers": [crit(LEAD, DK, conj="CONJUNCTION_OR")]})
    await core.publish("deals", {"triggers": [crit(LEAD)]}, object_type="deal")
    ev = core.event("c1", {"country": ("SE", "DK")}, snapshot={"country": "DK"})
    assert await core.ingest(ev) == [("wf", "enrolled")]


async def test_property_changed_event_trigger(core: Core) -> None:
    await core.publish(
        "wf",
        {
            "triggers": [
                {
                    "event": {
                        "event_type": "EVENT_TYPE_PROPERTY_CHANGED",
                        "property": "lifecyclestage",
                        "from_values": ["lead"],
                        "to_values": ["customer"],
                    }
                }
            ]
        },
    )
    assert await core.ingest(core.event("c1", {"lifecyclestage": ("subscriber", "customer")})) == []
    assert await core.ingest(core.event("c1", {"lifecyclestage": ("lead", "customer")})) == [
        ("wf", "enrolled")
    ]


async def test_property_changed_triggers_filed_by_target_value(core: Core) -> None:
    """Triggers with "to any of" are indexed by (property, value): a change to one of the
    values (any case, several values, several changes in one event) still finds them, a
    trigger without to_values fires on any change, and a change to another value fires none."""

    def changed_to(prop: str, *to: str) -> dict:
        return {
            "event": {
                "event_type": "EVENT_TYPE_PROPERTY_CHANGED",
                "property": prop,
                "to_values": list(to),
            }
        }

    await core.publish("to-mql-or-sql", {"triggers": [changed_to("lifecyclestage", "MQL", "sql")]})
    await core.publish("any-stage", {"triggers": [changed_to("lifecyclestage")]})
    await core.publish("to-dk", {"triggers": [changed_to("country", "DK")]})
    got = await core.ingest(core.event("c1", {"lifecyclestage": ("lead", "mql")}))
    assert sorted(got) == [("any-stage", "enrolled"), ("to-mql-or-sql", "enrolled")]
    got = await core.ingest(core.event("c2", {"lifecyclestage": ("lead", "customer")}))
    assert got == [("any-stage", "enrolled")]
    got = await core.ingest(core.event("c3", {"city": ("A", "B"), "country": ("SE", "dk")}))
    assert got == [("to-dk", "enrolled")]
    assert await core.ingest(core.event("c4", {"lifecyclestage": ("lead", None)})) == [
        ("any-stage", "enrolled")
    ]


async def test_form_and_custom_event_triggers(core: Core) -> None:
    await core.publish(
        "form",
        {"triggers": [{"event": {"event_type": "EVENT_TYPE_FORM_SUBMITTED", "form_id": "f1"}}]},
    )
    await core.publish(
        "custom",
        {
            "triggers": [
                {
                    "event": {
                        "event_type": "EVENT_TYPE_CUSTOM_EVENT",
                        "event_name": "signup",
                        "event_filters": [{"property": "plan", "operator": "eq", "value": "pro"}],
                    }
                }
            ]
        },
    )
    f2 = core.event("c1", kind=ChangeEventType.FORM_SUBMITTED, form_id="f2")
    assert await core.ingest(f2) == []
    f1 = core.event("c1", kind=ChangeEventType.FORM_SUBMITTED, form_id="f1")
    assert await core.ingest(f1) == [("form", "enrolled")]
    free = core.event(
        "c2", kind=ChangeEventType.CUSTOM_EVENT, event_name="signup", snapshot={"plan": "free"}
    )
    assert await core.ingest(free) == []
    pro = core.event(
        "c2", kind=ChangeEventType.CUSTOM_EVENT, event_name="signup", snapshot={"plan": "pro"}
    )
    assert await core.ingest(pro) == [("custom", "enrolled")]


async def test_list_and_association_triggers(core: Core) -> None:
    await core.publish(
        "lists",
        {
            "triggers": [
                {"event": {"event_type": "EVENT_TYPE_LIST_MEMBERSHIP_ADDED", "list_id": "L1"}}
            ]
        },
    )
    await core.publish(
        "assoc",
        {
            "triggers": [
                {
                    "event": {
                        "event_type": "EVENT_TYPE_ASSOCIATION_ADDED",
                        "association_object_type": "deal",
                    }
                }
            ]
        },
    )
    ev = core.event("c1", kind=ChangeEventType.LIST_MEMBERSHIP_ADDED, list_id="L1")
    assert await core.ingest(ev) == [("lists", "enrolled")]
    ev = core.event(
        "c1",
        kind=ChangeEventType.ASSOCIATION_ADDED,
        associated_object_type="deal",
        associated_record_id="d1",
    )
    assert await core.ingest(ev) == [("assoc", "enrolled")]


async def test_refinement_at_least_and_at_most_in_a_window(core: Core) -> None:
    await core.publish(
        "twice",
        {
            "triggers": [
                {
                    "event": {
                        "event_type": "EVENT_TYPE_FORM_SUBMITTED",
                        "form_id": "f1",
                        "refinement": {
                            "min_count": 2,
                            "window_start": (T0 - timedelta(days=30)).isoformat(),
                            "window_end": (T0 + timedelta(days=30)).isoformat(),
                        },
                    }
                }
            ]
        },
    )
    await core.publish(
        "once",
        {
            "triggers": [
                {
                    "event": {
                        "event_type": "EVENT_TYPE_FORM_SUBMITTED",
                        "form_id": "f1",
                        "refinement": {"max_count": 1},
                    }
                }
            ]
        },
    )
    old = core.event(
        "c1", kind=ChangeEventType.FORM_SUBMITTED, form_id="f1", occurred_at=T0 - timedelta(days=60)
    )  # outside the window
    assert await core.ingest(old) == [("once", "enrolled")]
    first = core.event("c1", kind=ChangeEventType.FORM_SUBMITTED, form_id="f1")
    assert await core.ingest(first) == []  # once: now 2 > at most 1; twice: 1 in window
    second = core.event("c1", kind=ChangeEventType.FORM_SUBMITTED, form_id="f1")
    assert await core.ingest(second) == [("twice", "enrolled")]


async def test_same_event_twice_has_the_effect_of_one(core: Core) -> None:
    await core.publish("wf", {"triggers": [crit(LEAD)]})
    ev = core.event("c1", {"lifecyclestage": ("subscriber", "lead")})
    dup1, out1 = await core.ingestor.ingest(ev)
    dup2, out2 = await core.ingestor.ingest(ev)
    assert (dup1, dup2) == (False, True)
    assert out1 == out2 and len(core.starter.runs) == 1


async def test_manual_enrollment(core: Core) -> None:
    await core.publish("wf", {"triggers": [{"manual": {}}]})
    cw = core.workflows.get(core.tenant, "wf")
    a = await core.enroller.enroll(cw, "r1", trigger="manual", record={})
    b = await core.enroller.enroll(cw, "r1", trigger="manual", record={})
    assert (a.outcome, b.outcome) == ("enrolled", "already_enrolled")
    # manual workflows ignore record changes
    assert await core.ingest(core.event("r2", {"x": (1, 2)})) == []


async def test_wrong_property_type_is_refused_naming_the_field(core: Core) -> None:
    ev = core.event("c1", {"num_employees": (1, "many")})
    with pytest.raises(InvalidArgument) as err:
        await core.ingestor.check_types(ev, "events[3]")
    assert err.value.violations[0].field == "events[3].changes[0].new_value"
    ok = core.event("c1", {"num_employees": (1, "12")})
    await core.ingestor.check_types(ok, "events[0]")


async def test_a_definition_changed_since_it_was_read_applies_at_once(core: Core) -> None:
    """Property definitions are cached per tenant and object type, but a value failing the
    cached one re-reads them (at most once a second): an enumeration option added a moment ago
    is accepted at once; a value still wrong is refused; a bad value repeated within the second
    costs no CRM read."""
    from crmflow.records.port import PropertyDefinition, PropertyType

    tier = PropertyDefinition(
        object_type="contact", name="tier", type=PropertyType.ENUMERATION, options=["gold"]
    )
    await core.records.define_property(core.tenant, tier)
    await core.ingestor.check_types(core.event("c1", {"tier": (None, "gold")}), "events[0]")
    await core.records.define_property(
        core.tenant, tier.model_copy(update={"options": ["gold", "silver"]})
    )
    await core.ingestor.check_types(core.event("c1", {"tier": ("gold", "silver")}), "events[0]")
    reads = 0
    list_properties = core.records.list_properties

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return await list_properties(*args, **kwargs)

    core.records.list_properties = counted  # type: ignore[method-assign]
    for _ in range(3):
        with pytest.raises(InvalidArgument) as err:
            await core.ingestor.check_types(core.event("c1", {"tier": ("gold", "bronze")}), "e")
        assert err.value.violations[0].field == "e.changes[0].new_value"
    assert reads == 0  # the definitions were read less than a second ago


async def test_defined_custom_events_are_checked_against_their_definition(core: Core) -> None:
    from crmflow.records.port import EventDefinition, PropertyDefinition, PropertyType

    def prop(name: str, t: PropertyType, *options: str, required: bool = False) -> Any:
        return PropertyDefinition(
            object_type="contact", name=name, type=t, options=list(options), required=required
        )

    await core.records.define_event(
        core.tenant,
        EventDefinition(
            name="signup",
            object_type="contact",
            properties=[
                prop("plan", PropertyType.ENUMERATION, "free", "pro", required=True),
                prop("seats", PropertyType.NUMBER),
                prop("trial_ends", PropertyType.DATE),
                prop("features", PropertyType.MULTI_SELECT, "sso", "api"),
                prop("source", PropertyType.STRING),
            ],
        ),
    )

    def signup(props: dict[str, Any], **kw: Any) -> Any:
        return core.event(
            "c1", kind=ChangeEventType.CUSTOM_EVENT, event_name="signup", snapshot=props, **kw
        )

    cases = [
        ({"plan": "pro", "seats": "many"}, "events[2].properties.seats"),
        ({"plan": "gold"}, "events[2].properties.plan"),
        ({"plan": "pro", "coupon": "X"}, "events[2].properties.coupon"),
        ({"plan": "pro", "trial_ends": "someday"}, "events[2].properties.trial_ends"),
        ({"seats": 3}, "events[2].properties.plan"),
        ({"plan": "pro", "features": ["sso", "fax"]}, "events[2].properties.features"),
        ({"plan": "pro", "source": {"utm": "x"}}, "events[2].properties.source"),
    ]
    for props, field in cases:
        with pytest.raises(InvalidArgument) as err:
            await core.ingestor.check_types(signup(props), "events[2]")
        assert [v.field for v in err.value.violations] == [field], props
    with pytest.raises(InvalidArgument) as err:
        await core.ingestor.check_types(signup({"plan": "pro"}, object_type="deal"), "events[0]")
    assert err.value.violations[0].field == "events[0].object_type"
    ok = {"plan": "pro", "seats": "12", "features": "sso;api", "source": "ad"}
    await core.ingestor.check_types(signup(ok), "events[0]")
    # An event without a definition keeps free-form properties.
    free = core.event(
        "c1", kind=ChangeEventType.CUSTOM_EVENT, event_name="other", snapshot={"x": [1, {}]}
    )
    await core.ingestor.check_types(free, "events[0]")

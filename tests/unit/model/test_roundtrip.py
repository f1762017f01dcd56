"""The pydantic models and the proto messages must describe the same thing.

A definition exercising every field goes to proto and back unchanged; a proto message that
breaks a model rule is refused naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crmflow.api.crm.v1 import records_pb2
from crmflow.api.workflow.v1 import criteria_pb2, triggers_pb2, workflow_pb2
from crmflow.errors import InvalidArgument
from crmflow.model.convert import from_proto, to_proto
from crmflow.model.criteria import FilterGroup
from crmflow.model.records import ChangeEvent
from crmflow.model.workflow import PublishedRevision, WorkflowDefinition

RICH = {
    "workflow_id": "wf-1",
    "tenant_id": "acme",
    "name": "Nurture",
    "description": "Leads from the webinar",
    "folder": "Marketing",
    "object_type": "contact",
    "enrollment": {
        "triggers": [
            {"manual": {}},
            {
                "schedule": {
                    "frequency": "SCHEDULE_FREQUENCY_WEEKLY",
                    "time_of_day": "08:30",
                    "days_of_week": [1, 3],
                    "filter": {
                        "filters": [{"property": "country", "operator": "eq", "value": "DK"}]
                    },
                }
            },
            {
                "schedule": {
                    "frequency": "SCHEDULE_FREQUENCY_DATE_PROPERTY",
                    "date_property": "renewal_date",
                    "offset_days": -30,
                }
            },
            {
                "event": {
                    "event_type": "EVENT_TYPE_PROPERTY_CHANGED",
                    "property": "lifecyclestage",
                    "from_values": ["lead"],
                    "to_values": ["customer"],
                    "refinement": {
                        "min_count": 2,
                        "max_count": 5,
                        "window_start": "2026-01-01T00:00:00Z",
                    },
                }
            },
            {
                "event": {
                    "event_type": "EVENT_TYPE_CUSTOM_EVENT",
                    "event_name": "pe_viewed_pricing",
                    "event_filters": [{"property": "plan", "operator": "in", "values": ["pro", 3]}],
                }
            },
            {
                "criteria": {
                    "filter": {
                        "conjunction": "CONJUNCTION_OR",
                        "filters": [
                            {"property": "amount", "operator": "between", "values": [10, 20.5]},
                            {
                                "property": "industry",
                                "operator": "eq",
                                "value": "software",
                                "association": {
                                    "object_type": "company",
                                    "label": "Primary",
                                    "quantifier": "ASSOCIATION_QUANTIFIER_ALL",
                                },
                            },
                        ],
                        "groups": [{"filters": [{"property": "email", "operator": "is_known"}]}],
                    }
                }
            },
        ],
        "reenrollment": {"enabled": True, "triggers": [{"manual": {}}]},
        "unenroll_when_criteria_not_met": True,
        "unenrollment_triggers": [
            {"event": {"event_type": "EVENT_TYPE_LIST_MEMBERSHIP_ADDED", "list_id": "L9"}}
        ],
        "suppression_list_ids": ["L1", "L2"],
        "goal": {
            "filters": [{"property": "lifecyclestage", "operator": "eq", "value": "customer"}],
            "enrollment_filters": [
                {
                    "workflow_id": "wf-0",
                    "condition": "ENROLLMENT_CONDITION_IS_NOT_CURRENTLY_ENROLLED",
                }
            ],
        },
        "unenroll_from_workflow_ids": ["wf-0"],
    },
    "start_action_id": "a1",
    "actions": {
        "a1": {
            "action_id": "a1",
            "action_type": "delay",
            "fields": {"kind": "duration", "seconds": 3600},
            "connection": {"next_action_id": "a2", "edge_type": "EDGE_TYPE_STANDARD"},
            "comments": [
                {
                    "comment_id": "c1",
                    "author": "u1",
                    "text": "why",
                    "created_at": "2026-02-03T04:05:06Z",
                }
            ],
        },
        "a2": {
            "action_id": "a2",
            "action_type": "if_then",
            "label": "Is customer?",
            "branches": [
                {
                    "branch_id": "b1",
                    "label": "Yes",
                    "criteria": {"filters": [{"property": "x", "operator": "gt", "value": 1}]},
                    "connection": {"next_action_id": "a3"},
                }
            ],
            "default_connection": {"next_action_id": "a1", "edge_type": "EDGE_TYPE_GOTO"},
        },
        "a3": {
            "action_id": "a3",
            "action_type": "set_property",
            "type_version": 2,
            "fields": {
                "property": "score",
                "mode": "increment",
                "amount": 5,
                "nested": {"k": [1, "a"]},
            },
            "placeholder": True,
        },
    },
    "data_sources": [
        {
            "source_id": "company",
            "kind": "DATA_SOURCE_KIND_PROPERTY_MATCH",
            "object_type": "company",
            "property": "domain",
            "enrolled_property": "email",
            "transform": "email_domain",
            "reduce": "REDUCE_RULE_FIRST_CREATED",
        },
        {
            "source_id": "listing",
            "kind": "DATA_SOURCE_KIND_PROPERTY_VALUE",
            "object_type": "listing",
            "property": "listing_id",
            "value": "X-1",
        },
    ],
    "settings": {
        "time_zone": "Europe/Copenhagen",
        "execution_window": {"days_of_week": [1, 2], "start_time": "08:00", "end_time": "16:00"},
        "blocked_dates": ["2026-12-24", "2026-12-25"],
        "auto_off_at": "2027-01-01T00:00:00Z",
        "notifications": {"error_recipients": ["ops@acme.test"], "enrollment_spike_threshold": 500},
        "metrics": {"track_conversion": True, "conversion_property": "lifecyclestage"},
    },
}


def test_rich_definition_round_trips_through_proto() -> None:
    model = WorkflowDefinition.model_validate(RICH)
    msg = to_proto(model, workflow_pb2.WorkflowDefinition)
    # Survives the wire, not just the in-memory message.
    wire = workflow_pb2.WorkflowDefinition.FromString(msg.SerializeToString())
    back = from_proto(wire, WorkflowDefinition)
    assert back == model
    assert back.enrollment.triggers[5].kind == "criteria"
    assert wire.actions["a2"].default_connection.edge_type == workflow_pb2.EDGE_TYPE_GOTO


def test_published_revision_and_change_event_round_trip() -> None:
    rev = PublishedRevision(
        tenant_id="acme",
        workflow_id="wf-1",
        revision=3,
        published_at=datetime(2026, 5, 1, 12, tzinfo=UTC),
        definition=WorkflowDefinition.model_validate(RICH),
    )
    assert from_proto(to_proto(rev, workflow_pb2.PublishedRevision), PublishedRevision) == rev
    ev = ChangeEvent.model_validate(
        {
            "event_id": "e1",
            "tenant_id": "acme",
            "event_type": "CHANGE_EVENT_TYPE_RECORD_UPDATED",
            "object_type": "contact",
            "record_id": "101",
            "occurred_at": "2026-05-01T12:00:00Z",
            "changes": [
                {"property": "lifecyclestage", "old_value": "lead", "new_value": "customer"}
            ],
        }
    )
    assert from_proto(to_proto(ev, records_pb2.ChangeEvent), ChangeEvent) == ev


def test_trigger_with_two_kinds_cannot_exist_in_proto_and_none_is_refused() -> None:
    # proto's oneof keeps the last kind set; an empty trigger is refused by the model.
    msg = workflow_pb2.WorkflowDefinition(
        object_type="contact",
        enrollment=triggers_pb2.EnrollmentSettings(triggers=[triggers_pb2.Trigger()]),
    )
    with pytest.raises(InvalidArgument) as err:
        from_proto(msg, WorkflowDefinition, field="definition")
    assert err.value.violations[0].field == "definition.enrollment.triggers.0"


def test_bad_nested_value_names_the_field() -> None:
    msg = workflow_pb2.WorkflowDefinition(
        object_type="contact",
        enrollment=triggers_pb2.EnrollmentSettings(
            triggers=[
                triggers_pb2.Trigger(
                    schedule=triggers_pb2.ScheduleTrigger(
                        frequency=triggers_pb2.SCHEDULE_FREQUENCY_DAILY, time_of_day="25:00"
                    )
                )
            ]
        ),
        settings=workflow_pb2.WorkflowSettings(time_zone="Mars/Olympus"),
    )
    with pytest.raises(InvalidArgument) as err:
        from_proto(msg, WorkflowDefinition, field="definition")
    fields = {v.field for v in err.value.violations}
    assert "definition.enrollment.triggers.0.schedule" in fields
    assert "definition.settings.time_zone" in fields


def test_missing_required_enum_is_refused() -> None:
    msg = workflow_pb2.WorkflowDefinition(
        object_type="contact",
        data_sources=[workflow_pb2.DataSource(source_id="s", object_type="company")],
    )
    with pytest.raises(InvalidArgument) as err:
        from_proto(msg, WorkflowDefinition, field="definition")
    assert err.value.violations[0].field == "definition.data_sources.0.kind"


def test_action_key_must_equal_its_id() -> None:
    with pytest.raises(ValueError, match="has action_id"):
        WorkflowDefinition.model_validate(
            {"object_type": "contact", "actions": {"a": {"action_id": "b", "action_type": "delay"}}}
        )


def test_filter_groups_nest_at_most_five_deep() -> None:
    group: dict = {"filters": [{"property": "p", "operator": "is_known"}]}
    for _ in range(5):
        group = {"groups": [group]}
    with pytest.raises(ValueError, match="nest at most"):
        FilterGroup.model_validate(group)
    # The same depth through proto is refused as INVALID_ARGUMENT, not a server error.
    msg = criteria_pb2.FilterGroup()
    from google.protobuf import json_format

    json_format.ParseDict(group, msg)
    with pytest.raises(InvalidArgument):
        from_proto(msg, FilterGroup, field="filter")

"""Loading the custom event definitions a workflow's triggers name, from the embedded store on
SQLite and PostgreSQL (the data panel's read; the rpcs are tested in test_service.py)."""

from __future__ import annotations

from crmflow.model.triggers import EventTrigger, EventType, Trigger
from crmflow.model.workflow import WorkflowDefinition
from crmflow.records.event_schema import event_view, load_event_definitions
from crmflow.records.port import EventDefinition, PropertyDefinition, PropertyType
from crmflow.records.sql import SqlRecordStore


def _custom(name: str) -> Trigger:
    return Trigger(event=EventTrigger(event_type=EventType.CUSTOM_EVENT, event_name=name))


async def test_definitions_of_the_triggering_events(store: SqlRecordStore, tenant_id: str) -> None:
    await store.define_event(
        tenant_id,
        EventDefinition(
            name="viewed",
            object_type="contact",
            properties=[
                PropertyDefinition(object_type="contact", name="page", type=PropertyType.STRING)
            ],
        ),
    )
    await store.define_event(tenant_id, EventDefinition(name="unused", object_type="contact"))
    wf = WorkflowDefinition(object_type="contact")
    wf.enrollment.triggers += [_custom("viewed"), _custom("clicked")]
    got = await load_event_definitions(store, tenant_id, wf)
    assert list(got) == ["viewed"]  # "clicked" has none; "unused" is not a trigger's
    view = event_view(wf, got)
    assert (view.types, view.closed) == ({"page": "string"}, False)
    wf.enrollment.triggers.pop()
    assert event_view(wf, await load_event_definitions(store, tenant_id, wf)).closed
    assert await load_event_definitions(store, "z" + tenant_id[1:], wf) == {}

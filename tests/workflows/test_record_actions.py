"""Record, data and notification actions through the workflow (dev server, in-memory CRM)."""

from __future__ import annotations

from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from crmflow.model.triggers import EventTrigger, EventType, Trigger
from crmflow.records.port import Association, Owner
from tests.workflows.harness import act, definition, enrollment, running_worker


async def test_record_actions_change_the_crm(
    temporal_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    actions = [
        act(
            "copy",
            "copy_property",
            "clear",
            source_property="email",
            target_object_type="company",
            target_property="last_contact_email",
        ),
        act("clear", "clear_property", "task", property="temp"),
        act(
            "task",
            "create_task",
            "note",
            title="Call {{ record.firstname }}",
            assign_to="record_owner",
            due_in_days=2,
        ),
        act("note", "create_note", "deal", body="Enrolled by workflow"),
        act(
            "deal",
            "create_record",
            "assoc",
            object_type="deal",
            properties={"dealname": "New deal for {{ record.firstname }}"},
        ),
        act(
            "assoc",
            "associate_records",
            "unassoc",
            to_object_type="company",
            to_record_id="co2",
            label="billing",
        ),
        act("unassoc", "remove_association", "list", to_object_type="company", to_record_id="co1"),
        act("list", "add_to_list", "mkt", list_id="{{ event.list }}"),
        act("mkt", "set_marketing_status", "fmt", status="non_marketing"),
        act(
            "fmt",
            "format_data",
            "use",
            operation="formula",
            formula="price * qty - 5",
            inputs={"price": "{{ record.price }}", "qty": 3},
            output_name="total",
        ),
        act("use", "set_property", property="total", value="{{ actions.fmt.outputs.total }}"),
    ]
    async with running_worker(temporal_env.client, tmp_path, task_queue) as h:
        s = h.store
        s.put(
            tenant_id,
            "contact",
            "c1",
            email="ada@example.com",
            firstname="Ada",
            temp="x",
            hubspot_owner_id="u7",
            price=10,
        )
        s.put(tenant_id, "company", "co1")
        s.put(tenant_id, "company", "co2")
        await s.associate(
            tenant_id,
            Association(
                from_object_type="contact",
                from_record_id="c1",
                to_object_type="company",
                to_record_id="co1",
            ),
        )
        lst = await s.create_list(tenant_id, "Nurture", "contact")
        from datetime import UTC, datetime

        from crmflow.model.records import ChangeEvent, ChangeEventType

        ev = ChangeEvent(
            event_id="e1",
            tenant_id=tenant_id,
            event_type=ChangeEventType.CUSTOM_EVENT,
            object_type="contact",
            record_id="c1",
            occurred_at=datetime.now(UTC),
            event_name="x",
            properties={"list": lst.list_id},
        )
        handle = await h.start(
            enrollment(tenant_id, "c1", definition(actions), triggering_event=ev)
        )
        assert (await handle.result()).status == "completed"
        timeline = await h.history.timeline(tenant_id=tenant_id, run_workflow_id=handle.id)
        assert [(t.action_id, t.status) for t in timeline if t.status != "succeeded"] == []

        c1 = (await s.get(tenant_id, "contact", "c1")).properties
        assert "temp" not in c1
        assert c1["marketing_contact_status"] == "non_marketing"
        assert c1["total"] == 25
        assert (await s.get(tenant_id, "company", "co1")).properties[
            "last_contact_email"
        ] == "ada@example.com"
        tasks = [r for (t, o, _), r in s.records.items() if t == tenant_id and o == "task"]
        assert [(t.properties["title"], t.properties["hubspot_owner_id"]) for t in tasks] == [
            ("Call Ada", "u7")
        ]
        notes = [r for (t, o, _), r in s.records.items() if t == tenant_id and o == "note"]
        deals = [r for (t, o, _), r in s.records.items() if t == tenant_id and o == "deal"]
        assert len(notes) == 1 and [d.properties["dealname"] for d in deals] == ["New deal for Ada"]
        companies = await s.list_associations(tenant_id, "contact", "c1", "company")
        assert [(a.to_record_id, a.label) for a in companies] == [("co2", "billing")]
        assert {a.to_object_type for _, a in s.assocs} >= {"task", "note", "deal", "company"}
        assert await s.is_member(tenant_id, lst.list_id, "c1")
        outputs = {t.action_id: t.outputs for t in timeline}
        assert outputs["deal"]["record_id"] == deals[0].record_id


async def test_create_record_loop_guard_skips_and_logs(
    temporal_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    actions = [act("mk", "create_record", object_type="contact", properties={"email": "x@y.z"})]
    defn = definition(actions)
    defn.enrollment.triggers = [Trigger(event=EventTrigger(event_type=EventType.RECORD_CREATED))]
    async with running_worker(temporal_env.client, tmp_path, task_queue) as h:
        h.store.put(tenant_id, "contact", "c1")
        handle = await h.start(enrollment(tenant_id, "c1", defn))
        assert (await handle.result()).status == "completed"
        [row] = await h.history.timeline(tenant_id=tenant_id, run_workflow_id=handle.id)
        assert row.status == "skipped" and "infinite-loop guard" in row.reason
        assert len([k for k in h.store.records if k[1] == "contact"]) == 1


async def test_rotate_owner_round_robin_persists_across_enrollments_and_notifies(
    temporal_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    actions = [
        act("rot", "rotate_owner", "tell", team_ids=["team-a"], owner_ids=["u1"]),
        act(
            "tell",
            "send_in_app_notification",
            user_ids=["{{ actions.rot.outputs.owner_id }}"],
            title="New lead {{ record.email }}",
        ),
    ]
    async with running_worker(temporal_env.client, tmp_path, task_queue) as h:
        h.store.owners[tenant_id] = [Owner(owner_id="team-a", kind="team", member_ids=["u2", "u3"])]
        owners = []
        for i in range(5):
            h.store.put(tenant_id, "contact", f"c{i}", email=f"c{i}@example.com")
            await h.run(enrollment(tenant_id, f"c{i}", definition(actions)))
            owners.append(
                (await h.store.get(tenant_id, "contact", f"c{i}")).properties["hubspot_owner_id"]
            )
        assert owners == ["u1", "u2", "u3", "u1", "u2"]
        notes, _ = await h.history.list_notifications(tenant_id=tenant_id, user_id="u1")
        assert sorted(n.title for n in notes) == [
            "New lead c0@example.com",
            "New lead c3@example.com",
        ]

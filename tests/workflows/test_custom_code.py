"""Custom code runs on its own task queue and its typed outputs drive a later branch."""

from __future__ import annotations

from pathlib import Path

from executor.secrets import FileSecrets
from temporalio.testing import WorkflowEnvironment

from crmflow.model.actions import Action, Connection
from tests.workflows.harness import (
    act,
    branch,
    definition,
    enrollment,
    make_settings,
    running_worker,
)

CODE = """
import os
def main(event):
    score = int(event["inputs"]["employees"]) * 2
    return {"outputs": {"score": score, "tier": "gold" if score > 100 else "silver",
                        "key_seen": os.environ.get("CRM_KEY") == "abc"}}
"""


async def test_custom_code_outputs_feed_a_branch(
    temporal_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    actions = [
        act(
            "code",
            "custom_code",
            "route",
            code=CODE,
            secrets=["CRM_KEY"],
            inputs={"employees": "{{ record.employees }}"},
            outputs=[
                {"name": "score", "type": "number"},
                {"name": "tier", "type": "enumeration", "options": ["gold", "silver"]},
                {"name": "key_seen", "type": "bool"},
            ],
        ),
        Action(
            action_id="route",
            action_type="value_equals",
            fields={"expression": "{{ actions.code.outputs.tier }}"},
            branches=[branch("gold", "set-gold", values=["gold"])],
            default_connection=Connection(next_action_id="set-other"),
        ),
        act("set-gold", "set_property", property="tier", value="gold"),
        act("set-other", "set_property", property="tier", value="other"),
    ]
    settings = make_settings(tmp_path, task_queue)
    FileSecrets(settings.data_dir / "secrets").put(tenant_id, "CRM_KEY", "abc")
    async with running_worker(
        temporal_env.client, tmp_path, task_queue, settings=settings, custom_code=True
    ) as h:
        h.store.put(tenant_id, "contact", "c1", employees=80)
        handle = await h.start(enrollment(tenant_id, "c1", definition(actions)))
        assert (await handle.result()).status == "completed"
        assert (await h.store.get(tenant_id, "contact", "c1")).properties["tier"] == "gold"
        [code_row, *_] = await h.history.timeline(tenant_id=tenant_id, run_workflow_id=handle.id)
        assert code_row.outputs == {"score": 160, "tier": "gold", "key_seen": True}
        events = [e async for e in handle.fetch_history_events()]
        scheduled = [
            e.activity_task_scheduled_event_attributes
            for e in events
            if e.HasField("activity_task_scheduled_event_attributes")
        ]
        queues = {a.activity_type.name: a.task_queue.name for a in scheduled}
        assert queues["action.custom_code"] == settings.temporal.custom_code_task_queue

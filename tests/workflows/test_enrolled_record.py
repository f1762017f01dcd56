"""EnrolledRecord end to end on a real Temporal server: graph walking and record actions."""

from __future__ import annotations

from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from tests.workflows.harness import act, definition, enrollment, running_worker


async def test_set_property_changes_the_record_and_records_history(
    temporal_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    defn = definition(
        [
            act("a1", "set_property", "a2", property="lifecyclestage", value="lead"),
            act("a2", "set_property", property="score", mode="increment", amount=5),
        ]
    )
    async with running_worker(temporal_env.client, tmp_path, task_queue) as h:
        h.store.put(tenant_id, "contact", "c1", score=10)
        handle = await h.start(enrollment(tenant_id, "c1", defn))
        result = await handle.result()
        assert result.status == "completed"
        assert result.steps == 2
        props = (await h.store.get(tenant_id, "contact", "c1")).properties
        assert props == {"score": 15, "lifecyclestage": "lead"}
        run = await h.history.get_run(tenant_id=tenant_id, run_workflow_id=handle.id)
        assert run is not None and run.status == "completed"
        timeline = await h.history.timeline(tenant_id=tenant_id, run_workflow_id=handle.id)
        assert [(t.action_id, t.status) for t in timeline] == [
            ("a1", "succeeded"),
            ("a2", "succeeded"),
        ]

"""Branches, go-to loops, continue-as-new and failure modes of the interpreter.

Runs on the real dev server (branches need no time skipping); records live in the in-memory
CRM port so the assertions are about the interpreter.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from executor.workflow import STEPS_MEMO
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from crmflow.model.actions import Action, Connection, EdgeType
from crmflow.model.criteria import FilterGroup, PropertyFilter
from crmflow.temporal import search_attributes as sa
from tests.workflows.harness import act, branch, definition, enrollment, running_worker


def _if_then() -> list[Action]:
    big = FilterGroup(filters=[PropertyFilter(property="employees", operator="gt", value=100)])
    mid = FilterGroup(filters=[PropertyFilter(property="employees", operator="gt", value=10)])
    return [
        Action(
            action_id="b",
            action_type="if_then",
            branches=[
                branch("big", "set-big", criteria=big),
                branch("mid", "set-mid", criteria=mid),
            ],
            default_connection=Connection(next_action_id="set-small"),
        ),
        act("set-big", "set_property", property="segment", value="enterprise"),
        act("set-mid", "set_property", property="segment", value="mid-market"),
        act("set-small", "set_property", property="segment", value="smb"),
    ]


@pytest.mark.parametrize(
    ("employees", "segment"), [(500, "enterprise"), (50, "mid-market"), (3, "smb"), (None, "smb")]
)
async def test_if_then_takes_the_first_matching_branch_then_default(
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    tenant_id: str,
    employees: int | None,
    segment: str,
) -> None:
    async with running_worker(temporal_env.client, tmp_path, task_queue) as h:
        h.store.put(tenant_id, "contact", "c1", **({"employees": employees} if employees else {}))
        result = await h.run(enrollment(tenant_id, "c1", definition(_if_then())))
        assert result.status == "completed"
        assert (await h.store.get(tenant_id, "contact", "c1")).properties["segment"] == segment


async def test_value_equals_on_property_and_expression(
    temporal_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    actions = [
        Action(
            action_id="v",
            action_type="value_equals",
            fields={"property": "country"},
            branches=[
                branch("dk", "set-dk", values=["DK", "Denmark"]),
                branch("de", "set-de", values=["DE"]),
            ],
            default_connection=Connection(next_action_id="set-other"),
        ),
        act("set-dk", "set_property", "v2", property="region", value="nordics"),
        act("set-de", "set_property", "v2", property="region", value="dach"),
        act("set-other", "set_property", "v2", property="region", value="other"),
        Action(
            action_id="v2",
            action_type="value_equals",
            fields={"expression": "{{ record.plan }}"},
            branches=[branch("pro", "flag", values=["pro"])],
        ),
        act("flag", "set_property", property="vip", value=True),
    ]
    async with running_worker(temporal_env.client, tmp_path, task_queue) as h:
        h.store.put(tenant_id, "contact", "c1", country="denmark", plan="pro")
        h.store.put(tenant_id, "contact", "c2", country="FR", plan="free")
        assert (await h.run(enrollment(tenant_id, "c1", definition(actions)))).status == "completed"
        assert (await h.run(enrollment(tenant_id, "c2", definition(actions)))).status == "completed"
        c1 = (await h.store.get(tenant_id, "contact", "c1")).properties
        c2 = (await h.store.get(tenant_id, "contact", "c2")).properties
        assert (c1["region"], c1.get("vip")) == ("nordics", True)
        assert (c2["region"], c2.get("vip")) == ("other", None)


async def test_random_split_is_deterministic_per_enrollment_and_follows_percentages(
    temporal_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    actions = [
        Action(
            action_id="r",
            action_type="random_split",
            branches=[branch("a", "set-a", percentage=30), branch("b", "set-b", percentage=70)],
        ),
        act("set-a", "set_property", property="arm", value="A"),
        act("set-b", "set_property", property="arm", value="B"),
    ]
    async with running_worker(temporal_env.client, tmp_path, task_queue) as h:
        handles = []
        for i in range(40):
            h.store.put(tenant_id, "contact", f"c{i}")
            handles.append(await h.start(enrollment(tenant_id, f"c{i}", definition(actions))))
        for handle in handles:
            await handle.result()
        arms = Counter(
            [
                (await h.store.get(tenant_id, "contact", f"c{i}")).properties["arm"]
                for i in range(40)
            ]
        )
        assert set(arms) == {"A", "B"} and arms["B"] > arms["A"]
        # The same enrollment id always takes the same arm (hash of id, action, visit).
        from executor.schedule import split_bucket

        for i, handle in enumerate(handles):
            expected = "A" if split_bucket(handle.id, "r", "1") < 30 else "B"
            assert (await h.store.get(tenant_id, "contact", f"c{i}")).properties["arm"] == expected


async def test_goto_loop_continues_as_new_and_keeps_state(
    temporal_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    """A go-to loop increments a counter until a branch leaves; runs continue-as-new."""
    done = FilterGroup(filters=[PropertyFilter(property="n", operator="gte", value=7)])
    actions = [
        act("inc", "set_property", "check", property="n", mode="increment", amount=1),
        Action(
            action_id="check",
            action_type="if_then",
            branches=[branch("done", "finish", criteria=done)],
            default_connection=Connection(next_action_id="inc", edge_type=EdgeType.GOTO),
        ),
        act("finish", "set_property", property="state", value="done"),
    ]
    async with running_worker(temporal_env.client, tmp_path, task_queue) as h:
        h.store.put(tenant_id, "contact", "c1", n=0)
        handle = await h.start(
            enrollment(tenant_id, "c1", definition(actions)), memo={STEPS_MEMO: 4}
        )
        result = await handle.result()
        assert result.status == "completed"
        assert result.steps == 7 * 2 + 1  # carried across runs
        props = (await h.store.get(tenant_id, "contact", "c1")).properties
        assert props == {"n": 7, "state": "done"}
        # Each loop visit had its own idempotency key: 7 increments, none deduplicated away.
        timeline = await h.history.timeline(tenant_id=tenant_id, run_workflow_id=handle.id)
        assert [t.visit for t in timeline if t.action_id == "inc"] == list(range(1, 8))
        first = temporal_env.client.get_workflow_handle(
            handle.id, run_id=handle.first_execution_run_id
        )
        events = [e async for e in first.fetch_history_events()]
        assert events[-1].HasField("workflow_execution_continued_as_new_event_attributes"), [
            e.event_type for e in events
        ][-5:]
        assert (await handle.describe()).typed_search_attributes.get(sa.STATUS) == "completed"


async def test_unknown_action_type_fails_loudly(
    temporal_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    async with running_worker(temporal_env.client, tmp_path, task_queue) as h:
        h.store.put(tenant_id, "contact", "c1")
        defn = definition([act("x", "teleport_record")])
        handle = await h.start(enrollment(tenant_id, "c1", defn))
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        assert "teleport_record" in str(err.value.cause)
        run = await h.history.get_run(tenant_id=tenant_id, run_workflow_id=handle.id)
        assert run is not None and run.status == "failed"
        assert (await handle.describe()).typed_search_attributes.get(sa.STATUS) == "failed"


async def test_failed_action_is_logged_with_attempts_and_the_record_moves_on(
    temporal_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    actions = [
        act("assoc", "associate_records", "after", to_object_type="company", to_record_id="nope"),
        act("after", "set_property", property="reached", value="yes"),
    ]
    async with running_worker(temporal_env.client, tmp_path, task_queue) as h:
        h.store.put(tenant_id, "contact", "c1")
        handle = await h.start(enrollment(tenant_id, "c1", definition(actions)))
        assert (await handle.result()).status == "completed"
        timeline = await h.history.timeline(tenant_id=tenant_id, run_workflow_id=handle.id)
        assert [(t.action_id, t.status) for t in timeline] == [
            ("assoc", "failed"),
            ("after", "succeeded"),
        ]
        assert "nope" in timeline[0].reason and timeline[0].attempts == 1  # NotFound: no retry

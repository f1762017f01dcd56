"""Record the JSON histories replayed by tests/workflows/test_replay.py.

    python -m tests.histories.record [--tag v2]

Histories recorded before an interpreter change are kept (they guard the old path of each
``workflow.patched``); new ones get a tag so both are replayed.

Runs representative enrollments on a throwaway dev server and writes one history per file.
Re-record only on purpose (a new interpreter feature); never to make a replay failure go away
— that failure is the point: interpreter changes need ``workflow.patched``.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from executor.workflow import STEPS_MEMO
from temporalio.testing import WorkflowEnvironment

from crmflow.model.actions import Action, Connection, EdgeType
from crmflow.model.criteria import FilterGroup, PropertyFilter
from crmflow.model.enrollment import (
    WORKFLOW_SIGNAL_EVENT,
    WORKFLOW_SIGNAL_UNENROLL,
    RecordEventSignal,
    UnenrollReason,
    UnenrollSignal,
)
from crmflow.model.records import ChangeEvent, ChangeEventType
from crmflow.temporal import search_attributes
from crmflow.temporal.devserver import temporal_cli
from crmflow.temporal.plugin import CrmflowPlugin
from tests.workflows.harness import act, branch, definition, enrollment, running_worker

HERE = Path(__file__).parent
TENANT = "acme"


def branches_and_delay() -> list[Action]:
    big = FilterGroup(filters=[PropertyFilter(property="employees", operator="gt", value=100)])
    return [
        act("set", "set_property", "branch", property="lifecyclestage", value="lead"),
        Action(
            action_id="branch",
            action_type="if_then",
            branches=[branch("big", "wait", criteria=big)],
            default_connection=Connection(next_action_id="small"),
        ),
        act("wait", "delay", "split", kind="duration", seconds=1),
        Action(
            action_id="split",
            action_type="random_split",
            branches=[branch("a", "fmt", percentage=50), branch("b", "fmt", percentage=50)],
        ),
        act("fmt", "format_data", "small", operation="uppercase", input="{{ record.email }}"),
        act("small", "set_property", property="segment", value="{{ actions.fmt.outputs.result }}"),
    ]


def event_wait() -> list[Action]:
    wait = Action(
        action_id="wait",
        action_type="delay",
        fields={
            "kind": "until_event",
            "seconds": 3600,
            "event": {"event_type": "EVENT_TYPE_CUSTOM_EVENT", "event_name": "demo_booked"},
        },
        connection=Connection(next_action_id="booked"),
        branches=[branch("timeout", "nudge")],
    )
    return [
        wait,
        act("booked", "set_property", property="stage", value="booked"),
        act("nudge", "set_property", property="stage", value="nudged"),
    ]


def loop() -> list[Action]:
    done = FilterGroup(filters=[PropertyFilter(property="n", operator="gte", value=3)])
    return [
        act("inc", "set_property", "check", property="n", mode="increment", amount=1),
        Action(
            action_id="check",
            action_type="if_then",
            branches=[branch("done", "", criteria=done)],
            default_connection=Connection(next_action_id="inc", edge_type=EdgeType.GOTO),
        ),
    ]


async def main(tag: str = "") -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=search_attributes.ALL,
        plugins=[CrmflowPlugin()],
        dev_server_log_level="error",
    )
    tmp = Path(tempfile.mkdtemp())
    try:
        async with running_worker(env.client, tmp, "record-histories") as h:
            h.store.put(TENANT, "contact", "c1", employees=500, email="ada@example.com")
            h.store.put(TENANT, "contact", "c2")
            h.store.put(TENANT, "contact", "c3")
            h.store.put(TENANT, "contact", "c4", n=0)
            runs = {}
            handle = await h.start(enrollment(TENANT, "c1", definition(branches_and_delay())))
            await handle.result()
            runs["branches_delay_format"] = handle

            handle = await h.start(enrollment(TENANT, "c2", definition(event_wait())))
            await asyncio.sleep(1)
            await handle.signal(
                WORKFLOW_SIGNAL_EVENT,
                RecordEventSignal(
                    event=ChangeEvent(
                        event_id="e1",
                        tenant_id=TENANT,
                        event_type=ChangeEventType.CUSTOM_EVENT,
                        object_type="contact",
                        record_id="c2",
                        occurred_at=datetime.now(UTC),
                        event_name="demo_booked",
                    )
                ),
            )
            await handle.result()
            runs["until_event_signal"] = handle

            handle = await h.start(enrollment(TENANT, "c3", definition(event_wait())))
            await asyncio.sleep(1)
            await handle.signal(
                WORKFLOW_SIGNAL_UNENROLL,
                UnenrollSignal(reason=UnenrollReason.MANUAL, detail="by test"),
            )
            await handle.result()
            runs["unenrolled_while_waiting"] = handle

            handle = await h.start(
                enrollment(TENANT, "c4", definition(loop())), memo={STEPS_MEMO: 3}
            )
            await handle.result()
            runs["goto_loop_continue_as_new"] = handle
            for name, hd in runs.items():
                first = env.client.get_workflow_handle(hd.id, run_id=hd.first_execution_run_id)
                history = await first.fetch_history()
                (HERE / f"{tag + '_' if tag else ''}{name}.json").write_text(history.to_json())
                print("recorded", name, len(history.events), "events")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--tag", default="")
    asyncio.run(main(parser.parse_args().tag))

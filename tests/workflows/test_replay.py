"""Recorded histories (tests/histories/*.json) replay against the current interpreter.

And the guard works: the same histories replayed against a deliberately changed interpreter
fail with a NondeterminismError unless the change is behind ``workflow.patched``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from executor.workflow import EnrolledRecord
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from crmflow.temporal.plugin import CrmflowPlugin
from tests.workflows.changed_interpreter import PatchedChange, UnpatchedChange

HISTORIES = sorted((Path(__file__).parents[1] / "histories").glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())


def test_there_are_recorded_histories() -> None:
    assert len(HISTORIES) >= 4


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays_with_the_current_interpreter(path: Path) -> None:
    replayer = Replayer(workflows=[EnrolledRecord], plugins=[CrmflowPlugin()])
    await replayer.replay_workflow(_history(path))


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_unpatched_interpreter_change_is_caught(path: Path) -> None:
    replayer = Replayer(workflows=[UnpatchedChange], plugins=[CrmflowPlugin()])
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(_history(path))


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_the_same_change_behind_workflow_patched_replays(path: Path) -> None:
    replayer = Replayer(workflows=[PatchedChange], plugins=[CrmflowPlugin()])
    await replayer.replay_workflow(_history(path))

"""Undo/redo rules on the editor core (real SQLite): custom code and the 30-day window."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from editor_api import edits
from editor_api.db import migrate
from editor_api.service import EditorCore

from crmflow.actions import control, record
from crmflow.actions.registry import ActionRegistry, ActionSpec
from crmflow.db import create_engine, session_factory
from crmflow.errors import FailedPrecondition
from crmflow.model.actions import Action
from crmflow.model.base import Model
from crmflow.model.workflow import WorkflowDefinition


class CodeFields(Model):
    source: str = ""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[tuple[EditorCore, Clock]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    await migrate(url)
    await migrate(url)  # idempotent
    engine = create_engine(url)
    code = ActionSpec("custom_code", CodeFields, "Custom code", "custom_code", undoable=False)
    registry = ActionRegistry([*control.SPECS, *record.SPECS, code])
    clock = Clock()
    try:
        yield EditorCore(session_factory(engine), registry=registry, clock=clock), clock
    finally:
        await engine.dispose()


def add(core: EditorCore, aid: str, t: str, fields: dict) -> edits.Edit:
    return edits.add_action(
        core.registry, Action(action_id=aid, action_type=t, fields=fields), None
    )


async def test_custom_code_changes_cannot_be_undone_or_redone(
    core: tuple[EditorCore, Clock],
) -> None:
    c, _ = core
    v = await c.create("t", WorkflowDefinition(object_type="contact"), actor="a", source="test")
    wid = v.row.workflow_id
    await c.edit(
        "t",
        wid,
        expected=0,
        actor="a",
        operation="AddAction",
        fn=add(c, "d", "delay", {"seconds": 1}),
    )
    await c.edit(
        "t",
        wid,
        expected=0,
        actor="a",
        operation="AddAction",
        fn=add(c, "cc", "custom_code", {"source": "x"}),
    )
    with pytest.raises(FailedPrecondition) as info:
        await c.step("t", wid, expected=0, actor="a", redo=False)
    assert "custom-code" in info.value.message and "cannot be undone" in info.value.message
    assert (await c.get("t", wid)).row.draft_revision == 3  # nothing written
    # Updating the custom code action is just as irreversible; other edits stay undoable.
    await c.edit(
        "t",
        wid,
        expected=0,
        actor="a",
        operation="RenameWorkflow",
        fn=edits.rename("n", None, None),
    )
    view, op = await c.step("t", wid, expected=0, actor="a", redo=False)
    assert op == "RenameWorkflow" and view.redo_available == 1
    with pytest.raises(FailedPrecondition):
        await c.step("t", wid, expected=0, actor="a", redo=False)


async def test_undo_only_reaches_thirty_days_back(core: tuple[EditorCore, Clock]) -> None:
    c, clock = core
    v = await c.create("t", WorkflowDefinition(object_type="contact"), actor="a", source="test")
    wid = v.row.workflow_id
    await c.edit(
        "t",
        wid,
        expected=0,
        actor="a",
        operation="AddAction",
        fn=add(c, "d1", "delay", {"seconds": 1}),
    )
    clock.now += timedelta(days=20)
    await c.edit(
        "t",
        wid,
        expected=0,
        actor="a",
        operation="AddAction",
        fn=add(c, "d2", "delay", {"seconds": 1}),
    )
    clock.now += timedelta(days=15)  # d1 is now 35 days old, d2 15
    assert (await c.get("t", wid)).undo_available == 1
    view, _ = await c.step("t", wid, expected=0, actor="a", redo=False)
    assert set(WorkflowDefinition.model_validate_json(view.row.draft).actions) == {"d1"}
    with pytest.raises(FailedPrecondition) as info:
        await c.step("t", wid, expected=0, actor="a", redo=False)
    assert "30 days" in info.value.message

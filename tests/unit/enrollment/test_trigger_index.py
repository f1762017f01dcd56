"""TriggerIndex.match: the direct evaluation of the enrolled workflows' leaving rules finds
exactly what the leaving / falling indexes find (random criteria, random changes)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from enrollment import trigger_index
from enrollment.compiled import compile_revision
from enrollment.trigger_index import TriggerIndex

from crmflow.model.records import ChangeEvent, ChangeEventType, PropertyChange
from crmflow.model.workflow import PublishedRevision, WorkflowDefinition
from tests.unit.criteria.test_index import PROPS, VALUES, random_group, random_record

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def revision(i: int, rng: random.Random) -> PublishedRevision:
    enrollment = {
        "triggers": [{"criteria": {"filter": random_group(rng).model_dump(mode="json")}}],
        "unenroll_when_criteria_not_met": rng.random() < 0.5,
    }
    if rng.random() < 0.5:
        enrollment["goal"] = random_group(rng).model_dump(mode="json")
    if rng.random() < 0.5:
        g = random_group(rng).model_dump(mode="json")
        enrollment["unenrollment_triggers"] = [{"criteria": {"filter": g}}]
    d = WorkflowDefinition.model_validate(
        {
            "workflow_id": f"wf{i}",
            "tenant_id": "t",
            "object_type": "contact",
            "enrollment": enrollment,
        }
    )
    return PublishedRevision(
        tenant_id="t", workflow_id=f"wf{i}", revision=1, published_at=NOW, definition=d
    )


def random_update(
    rng: random.Random, n: int
) -> tuple[ChangeEvent, dict[str, Any], dict[str, Any], list[tuple[str, Any, Any]]]:
    """A random record updated on two properties: (event, record before and after, changes)."""
    old = random_record(rng)
    changes = [(p, old.get(p), rng.choice(VALUES[p])) for p in rng.sample(PROPS, 2)]
    new = {**old, **{p: v for p, _, v in changes}}
    return update(n, changes), old, new, changes


def update(n: int, changes: list[tuple[str, Any, Any]]) -> ChangeEvent:
    """Record r1 updated: (property, old value, new value) per change."""
    return ChangeEvent(
        event_id=f"e{n}",
        tenant_id="t",
        event_type=ChangeEventType.RECORD_UPDATED,
        object_type="contact",
        record_id="r1",
        occurred_at=NOW,
        changes=[PropertyChange(property=p, old_value=o, new_value=v) for p, o, v in changes],
    )


def leaving(matches: list[trigger_index.Match]) -> set[tuple[str, str, int, str]]:
    return {
        (m.workflow.workflow_id, m.role, m.index, m.kind)
        for m in matches
        if m.role in ("goal", "unenroll", "stay")
    }


@pytest.mark.parametrize("seed", range(3))
def test_direct_leaving_rules_agree_with_the_indexes(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    idx = TriggerIndex()
    for i in range(40):
        idx.put(compile_revision(revision(i, rng)))
    idx.put(compile_revision(revision(99, rng), enabled=False))  # fires nothing
    enrolled = {f"wf{i}" for i in range(0, 40, 2)} | {"wf99", "unknown"}
    found = 0
    for n in range(300):
        ev, _old, new, changes = random_update(rng, n)
        monkeypatch.setattr(trigger_index, "DIRECT_LEAVING", 10**6)
        direct = leaving(idx.match(ev, new, NOW, enrolled))
        monkeypatch.setattr(trigger_index, "DIRECT_LEAVING", -1)
        indexed = leaving(idx.match(ev, new, NOW, enrolled))
        assert direct == indexed, (changes, direct ^ indexed)
        assert all(wf in enrolled for wf, *_ in direct)
        found += len(direct)
    assert found > 0  # leaving rules did fire


@pytest.mark.parametrize("seed", range(3))
def test_enroll_matches_equal_a_scan_of_every_workflow(seed: int) -> None:
    """The criteria enrollments ``match`` reports (candidates decided by the index on both
    states, or confirmed with the compiled criteria) are exactly the transitions a scan of
    every workflow finds."""
    rng = random.Random(seed)
    idx = TriggerIndex()
    cws = [compile_revision(revision(i, rng)) for i in range(60)]
    for cw in cws:
        idx.put(cw)
    found = 0
    for n in range(300):
        ev, old, new, changes = random_update(rng, n)
        got = [
            (m.workflow.workflow_id, m.index)
            for m in idx.match(ev, new, NOW, set())
            if m.role == "enroll" and m.kind == "criteria"
        ]
        want = {
            (cw.workflow_id, i)
            for cw in cws
            for (role, i), (_g, m) in cw.criteria.items()
            if role == "enroll" and m(new, NOW, {}) and not m(old, NOW, {})
        }
        assert len(got) == len(set(got)) and set(got) == want, (changes, set(got) ^ want)
        found += len(want)
    assert found > 0


def _changed_trigger_revision(
    wf: str,
    prop: str,
    revision: int = 1,
    to: list[str] | None = None,
    from_: list[str] | None = None,
) -> PublishedRevision:
    event: dict[str, Any] = {"event_type": "EVENT_TYPE_PROPERTY_CHANGED", "property": prop}
    if to:
        event["to_values"] = to
    if from_:
        event["from_values"] = from_
    d = WorkflowDefinition.model_validate(
        {
            "workflow_id": wf,
            "tenant_id": "t",
            "object_type": "contact",
            "enrollment": {"triggers": [{"event": event}]},
        }
    )
    return PublishedRevision(
        tenant_id="t", workflow_id=wf, revision=revision, published_at=NOW, definition=d
    )


def test_property_changed_triggers_fire_across_republish_and_removal() -> None:
    """Property-changed triggers are filed by property (and target value): the filing must
    follow every publish, re-publish and removal, or a trigger goes quiet (or fires after
    its workflow is gone)."""
    idx = TriggerIndex()

    def fired(n: int, prop: str = "stage") -> set[str]:
        ev = update(n, [(prop, "lead", "customer")])
        return {m.workflow.workflow_id for m in idx.match(ev, {prop: "customer"}, NOW)}

    idx.put(compile_revision(_changed_trigger_revision("a", "stage")))
    idx.put(compile_revision(_changed_trigger_revision("b", "stage")))
    assert fired(1) == {"a", "b"}
    idx.put(compile_revision(_changed_trigger_revision("a", "stage", revision=2)))  # re-publish
    assert fired(2) == {"a", "b"}
    idx.remove("t", "a")
    assert fired(3) == {"b"}
    idx.put(compile_revision(_changed_trigger_revision("b", "owner", revision=2)))  # moved
    assert fired(4) == set()
    assert fired(5, "owner") == {"b"}
    idx.remove("t", "b")
    assert fired(6, "owner") == set()
    # by target value: only a change to one of them (compared as text) fires
    idx.put(compile_revision(_changed_trigger_revision("c", "stage", to=["Customer", "mql"])))
    assert fired(7) == {"c"}
    ev = update(8, [("stage", "customer", "lead")])
    assert not idx.match(ev, {"stage": "lead"}, NOW)
    # a value repeated (no move) fires nothing
    assert not idx.match(
        update(10, [("stage", "customer", "customer")]), {"stage": "customer"}, NOW
    )
    # with "from" values too: the trigger itself is asked
    idx.put(
        compile_revision(_changed_trigger_revision("d", "stage", to=["customer"], from_=["mql"]))
    )
    assert fired(11) == {"c"}  # from lead
    ev = update(12, [("stage", "mql", "customer")])
    assert {m.workflow.workflow_id for m in idx.match(ev, {"stage": "customer"}, NOW)} == {"c", "d"}
    idx.remove("t", "c")
    idx.remove("t", "d")
    assert fired(9) == set()
    assert not idx._scopes[("t", "contact")].prop_events  # nothing left behind

"""Patch-based change records: applying either half restores that side exactly."""

from __future__ import annotations

from editor_api import changes


def test_diff_apply_roundtrip() -> None:
    before = {"name": "a", "actions": {"x": {"v": 1}, "y": {"v": 2}}}
    after = {"name": "b", "actions": {"x": {"v": 1}, "y": {"v": 3}, "z": {"v": 4}}}
    old, new, ids = changes.diff(before, after)
    assert sorted(ids) == ["y", "z"] and old["actions"]["z"] is None
    assert changes.matches(after, new) and not changes.matches(after, old)
    assert changes.apply(after, old) == before
    assert changes.apply(before, new) == after


def test_actions_only_change_does_not_store_the_rest() -> None:
    old, new, _ = changes.diff({"name": "a", "actions": {}}, {"name": "a", "actions": {"x": {}}})
    assert "rest" not in old and "rest" not in new

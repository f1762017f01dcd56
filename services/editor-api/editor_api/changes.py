"""Change records for undo/redo as patches, not whole drafts.

A 500-action draft is ~150 KB; storing it twice per edit made the change log the biggest write
of every edit. A change stores only what differed: the changed actions (``null`` = absent) and,
when anything outside ``actions`` changed, the rest of the document. ``before`` and ``after``
are the two halves of the same patch, so undo applies ``before`` and redo applies ``after``.
"""

from __future__ import annotations

import json
from typing import Any

Patch = dict[str, Any]


def diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[Patch, Patch, list[str]]:
    """(before half, after half, ids of changed actions)."""
    ba, aa = before.get("actions", {}), after.get("actions", {})
    changed = [aid for aid in (*ba, *(k for k in aa if k not in ba)) if ba.get(aid) != aa.get(aid)]
    old: Patch = {"actions": {aid: ba.get(aid) for aid in changed}}
    new: Patch = {"actions": {aid: aa.get(aid) for aid in changed}}
    rest_b = {k: v for k, v in before.items() if k != "actions"}
    rest_a = {k: v for k, v in after.items() if k != "actions"}
    if rest_b != rest_a:
        old["rest"], new["rest"] = rest_b, rest_a
    return old, new, changed


def matches(doc: dict[str, Any], half: Patch) -> bool:
    """Whether ``doc`` is in the state ``half`` describes (for the parts the patch touches)."""
    actions = doc.get("actions", {})
    if any(actions.get(aid) != val for aid, val in half["actions"].items()):
        return False
    rest = half.get("rest")
    return rest is None or {k: v for k, v in doc.items() if k != "actions"} == rest


def apply(doc: dict[str, Any], half: Patch) -> dict[str, Any]:
    out = dict(half["rest"]) if "rest" in half else {k: v for k, v in doc.items() if k != "actions"}
    actions = dict(doc.get("actions", {}))
    for aid, val in half["actions"].items():
        if val is None:
            actions.pop(aid, None)
        else:
            actions[aid] = val
    out["actions"] = actions
    return out


def dumps(half: Patch) -> str:
    return json.dumps(half, separators=(",", ":"))

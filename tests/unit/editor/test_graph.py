"""Pure graph edits keep the tree invariant (checked by check_structure after each edit)."""

from __future__ import annotations

import pytest
from editor_api import graph

from crmflow.errors import InvalidArgument
from crmflow.model.actions import Action, Branch, Connection, EdgeType
from crmflow.model.workflow import WorkflowDefinition


def delay(aid: str) -> Action:
    return Action(action_id=aid, action_type="delay", fields={"seconds": 1})


def chain(*ids: str) -> WorkflowDefinition:
    d = WorkflowDefinition(object_type="contact")
    for aid in reversed(ids):
        graph.insert(d, delay(aid), graph.Slot("", graph.START))
    return d


def path(d: WorkflowDefinition) -> list[str]:
    out, cur = [], d.start_action_id
    while cur:
        out.append(cur)
        a = d.actions[cur]
        nxt = a.connection or a.default_connection
        cur = nxt.next_action_id if nxt and nxt.edge_type == EdgeType.STANDARD else ""
    return out


def test_insert_at_start_after_and_on_branches() -> None:
    d = chain("a", "b")
    graph.insert(d, delay("x"), graph.slot_for(d, after_action_id="a"))
    assert path(d) == ["a", "x", "b"]
    split = Action(action_id="s", action_type="if_then", branches=[Branch(branch_id="y")])
    graph.insert(d, split, graph.slot_for(d, after_action_id="b"))
    graph.insert(d, delay("y1"), graph.slot_for(d, parent_action_id="s", branch_id="y"))
    graph.insert(d, delay("d1"), graph.slot_for(d, parent_action_id="s", branch_id="default"))
    graph.check_structure(d)
    assert d.actions["s"].branches[0].connection == Connection(next_action_id="y1")
    with pytest.raises(InvalidArgument) as info:
        graph.slot_for(d, after_action_id="s")
    assert info.value.violations[0].field == "position.after_action_id"


def test_inserting_a_branch_before_actions_hangs_them_on_the_default_path() -> None:
    d = chain("a", "b")
    graph.insert(
        d, Action(action_id="s", action_type="random_split"), graph.slot_for(d, after_action_id="a")
    )
    assert d.actions["s"].default_connection == Connection(next_action_id="b")
    graph.check_structure(d)


def test_delete_reconnects_and_retargets_gotos() -> None:
    d = chain("a", "b", "c")
    d.actions["c"].connection = Connection(next_action_id="b", edge_type=EdgeType.GOTO)
    removed = graph.delete(d, "b", with_subtree=False)
    assert removed == ["b"] and path(d) == ["a", "c"]
    # The go-to into b now follows the reconnected path (to c itself).
    assert d.actions["c"].connection == Connection(next_action_id="c", edge_type=EdgeType.GOTO)
    graph.check_structure(d)


def test_delete_subtree_and_keep_branch() -> None:
    d = chain("a")
    d.actions["s"] = Action(action_id="s", action_type="if_then", branches=[Branch(branch_id="y")])
    d.actions["a"].connection = Connection(next_action_id="s")
    graph.insert(d, delay("y1"), graph.Slot("s", "y"))
    graph.insert(d, delay("n1"), graph.Slot("s", graph.DEFAULT))
    with pytest.raises(InvalidArgument):
        graph.delete(d, "s", with_subtree=False)
    removed = graph.delete(d, "s", with_subtree=False, keep_branch_id="y")
    assert sorted(removed) == ["n1", "s"] and path(d) == ["a", "y1"]
    assert sorted(graph.delete(d, "a", with_subtree=True)) == ["a", "y1"]
    assert d.actions == {} and d.start_action_id == ""


def test_move_and_clone() -> None:
    d = chain("a", "b", "c")
    graph.move(d, "c", graph.slot_for(d, after_action_id="a"))
    assert path(d) == ["a", "c", "b"]
    new = graph.clone(d, "a", None)
    assert path(d) == ["a", new, "c", "b"] and d.actions[new].fields == d.actions["a"].fields
    with pytest.raises(InvalidArgument):
        graph.move(d, "a", graph.slot_for(d, after_action_id="a"))
    graph.check_structure(d)


def test_check_structure_rejects_two_parents_and_cycles() -> None:
    d = chain("a", "b")
    d.actions["b"].connection = Connection(next_action_id="a")
    with pytest.raises(InvalidArgument) as info:
        graph.check_structure(d)
    assert "already has a parent" in info.value.violations[0].description
    d.actions["b"].connection = Connection(next_action_id="a", edge_type=EdgeType.GOTO)
    graph.check_structure(d)


def test_update_action_dropping_a_branch_deletes_its_subtree() -> None:
    from editor_api import edits
    from editor_api.plans import Plan

    from crmflow.actions.catalogue import default_registry

    d = chain("a")
    split = Action(
        action_id="s",
        action_type="random_split",
        branches=[Branch(branch_id="x", percentage=50), Branch(branch_id="y", percentage=50)],
    )
    graph.insert(d, split, graph.slot_for(d, after_action_id="a"))
    graph.insert(d, delay("x1"), graph.Slot("s", "x"))
    graph.insert(d, delay("y1"), graph.Slot("s", "y"))
    new = Action(
        action_id="s", action_type="random_split", branches=[Branch(branch_id="x", percentage=100)]
    )
    edits.update_action(default_registry(), new)(d, Plan("t"))
    assert set(d.actions) == {"a", "s", "x1"}
    assert d.actions["s"].branches[0].connection == Connection(next_action_id="x1")
    graph.check_structure(d)

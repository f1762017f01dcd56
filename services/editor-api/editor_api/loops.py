"""Go-to loops that would spin without waiting: cycles made only of non-delay actions.

Delay actions are removed from the graph; any strongly connected component left that still
holds a cycle is a loop an enrollment could run through forever without a timer. Iterative
Tarjan, so a 500-action chain does not hit the recursion limit.
"""

from __future__ import annotations

from crmflow.actions.control import DELAY
from crmflow.model.actions import EdgeType
from crmflow.model.workflow import WorkflowDefinition


def loops_without_delay(d: WorkflowDefinition) -> list[str]:
    """Sources of GOTO edges on a cycle made only of non-delay actions (iterative Tarjan)."""
    nodes = [a for a in d.actions if d.actions[a].action_type != DELAY]
    allowed = set(nodes)
    succ = {
        a: [c.next_action_id for _, c in d.actions[a].edges() if c.next_action_id in allowed]
        for a in nodes
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    st: list[str] = []
    comp_of: dict[str, int] = {}
    counter = 0
    ncomp = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                st.append(v)
                on.add(v)
            if i < len(succ[v]):
                work.append((v, i + 1))
                w = succ[v][i]
                if w not in index:
                    work.append((w, 0))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                while True:
                    w = st.pop()
                    on.discard(w)
                    comp_of[w] = ncomp
                    if w == v:
                        break
                ncomp += 1
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    out = []
    for v in nodes:
        for _, c in d.actions[v].edges():
            w = c.next_action_id
            if w in allowed and comp_of.get(w) == comp_of[v] and c.edge_type == EdgeType.GOTO:
                out.append(v)
                break
    return sorted(out)

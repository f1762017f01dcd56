"""Actions as a graph keyed by action id (HubSpot's v4 shape).

Every action has an ``action_type`` (a registry key, see ``crmflow.actions``) and ``fields``
whose schema the registry owns. Outgoing edges are ``connection`` (the next action), the
``branches``' connections and ``default_connection``. A ``GOTO`` edge points at an action that
lives elsewhere in the tree; ``STANDARD`` edges own their target (moving or deleting an action
carries its standard subtree).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, Field

from crmflow.model.base import Model
from crmflow.model.criteria import FilterGroup


class EdgeType(StrEnum):
    STANDARD = "EDGE_TYPE_STANDARD"
    GOTO = "EDGE_TYPE_GOTO"


class Connection(Model):
    next_action_id: str
    edge_type: EdgeType = EdgeType.STANDARD


class Branch(Model):
    """One outgoing path of a branch action.

    if/then: ``criteria``; value equals: ``values``; random split: ``percentage``;
    delay-until-event: the single branch is the timeout path.
    """

    branch_id: str
    label: str = ""
    criteria: FilterGroup | None = None
    values: list[str] = Field(default_factory=list)
    percentage: int = Field(default=0, ge=0, le=100)
    connection: Connection | None = None


class Comment(Model):
    comment_id: str
    author: str = ""
    text: str
    created_at: AwareDatetime | None = None


class Action(Model):
    action_id: str
    action_type: str
    type_version: int = 1
    label: str = ""
    fields: dict[str, Any] = Field(default_factory=dict)
    connection: Connection | None = None
    branches: list[Branch] = Field(default_factory=list)
    default_connection: Connection | None = None
    # A placeholder has its type chosen but its details missing; publishing refuses it.
    placeholder: bool = False
    comments: list[Comment] = Field(default_factory=list)

    def edges(self) -> list[tuple[str, Connection]]:
        """Outgoing edges as (label, connection), in evaluation order."""
        out: list[tuple[str, Connection]] = []
        if self.connection:
            out.append(("next", self.connection))
        for b in self.branches:
            if b.connection:
                out.append((b.label or b.branch_id, b.connection))
        if self.default_connection:
            out.append(("default", self.default_connection))
        return out

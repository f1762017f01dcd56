"""A change of a record's enrollment state in a workflow (its ``@enrollment:<workflow>``
virtual property), which workflows reading "has been / is currently enrolled in" react to.

Kept apart from ``enroller`` so the ledger can store one (the ``pending_fact_change`` outbox)
without importing the rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class FactChange:
    """A record's enrollment state in a workflow changed (its ``@enrollment:<workflow>``
    virtual property went ``old`` -> ``new``): other workflows may trigger on it."""

    tenant_id: str
    object_type: str
    record_id: str
    workflow_id: str
    old: str | None
    new: str | None
    # The enrollment's Temporal workflow id: with ``new`` it names the change (dedupe).
    run_workflow_id: str
    record: Mapping[str, Any] | None = None
    # Written to the ledger's outbox (``pending_fact_change``) in the transaction that made
    # the change: deleted once the cascade ran, replayed by the recovery loop otherwise.
    durable: bool = False

    @property
    def change_id(self) -> str:
        """Deterministic id of the change: the synthetic event's id (a replay is a duplicate)."""
        cid = f"enrollment:{self.run_workflow_id}:{self.new or 'none'}"
        if len(cid) > 200:
            cid = "enrollment:" + hashlib.sha256(cid.encode()).hexdigest()
        return cid

    def outbox_values(self, now: datetime) -> dict[str, Any]:
        """The ``pending_fact_change`` row of this change."""
        return {
            "tenant_id": self.tenant_id,
            "change_id": self.change_id,
            "object_type": self.object_type,
            "record_id": self.record_id,
            "workflow_id": self.workflow_id,
            "old": self.old,
            "new": self.new,
            "run_workflow_id": self.run_workflow_id,
            "created_at": now,
        }

    @classmethod
    def from_outbox(cls, row: Mapping[str, Any]) -> FactChange:
        return cls(
            row["tenant_id"],
            row["object_type"],
            row["record_id"],
            row["workflow_id"],
            row["old"],
            row["new"],
            row["run_workflow_id"],
            durable=True,
        )

"""The default catalogue: control flow plus every side-effecting action type."""

from __future__ import annotations

from functools import cache

from crmflow.actions import communication, control, custom_code, data, flow, record, webhook
from crmflow.actions.registry import ActionRegistry


@cache
def default_registry() -> ActionRegistry:
    # Built once per process and never mutated afterwards.
    return ActionRegistry(
        [
            *control.SPECS,
            *record.SPECS,
            *communication.SPECS,
            *webhook.SPECS,
            *custom_code.SPECS,
            *data.SPECS,
            *flow.SPECS,
        ]
    )

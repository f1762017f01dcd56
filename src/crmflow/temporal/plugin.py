"""One place for Temporal cross-cutting set-up, used by every client and worker.

The pydantic data converter makes every workflow, signal, query and activity take and return
pydantic models; the sandbox passes our pure model/criteria modules through (they are
deterministic and importing them per-workflow would be slow).
"""

from __future__ import annotations

import dataclasses

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.plugin import SimplePlugin
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSTHROUGH_MODULES = ("crmflow.model", "crmflow.criteria", "pydantic", "pydantic_core")


def _runner(existing: object) -> object:
    # Add to the worker's own sandbox configuration rather than replace it: a worker may pass
    # more modules through (the executor passes its interpreter through) or opt out of the
    # sandbox entirely, and the plugin must not undo that.
    if existing is not None and not isinstance(existing, SandboxedWorkflowRunner):
        return existing
    base = existing or SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default)
    return dataclasses.replace(
        base, restrictions=base.restrictions.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )


class CrmflowPlugin(SimplePlugin):
    def __init__(self) -> None:
        super().__init__(
            "crmflow",
            data_converter=pydantic_data_converter,
            workflow_runner=_runner,  # type: ignore[arg-type]
        )

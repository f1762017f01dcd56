"""Temporal workers of the executor: the main one (interpreter + actions) and custom code."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from executor.activities.base import Deps, build_action_activities
from executor.activities.internal import build_internal_activities
from executor.workflow import EnrolledRecord

# The interpreter's module is passed through the workflow sandbox: imported once per worker
# instead of once per workflow run. The sandbox re-executes a workflow's module for every run
# (and every replay after eviction); for this module that meant compiling ~550 lines of source
# each time when no bytecode cache is writable (PYTHONDONTWRITEBYTECODE, read-only images):
# ~9 ms of CPU per run, more than the rest of a short run's workflow code. The module keeps no
# state between runs and calls only deterministic ``workflow.*`` APIs; since the sandbox no
# longer checks that in production, tests/workflows/test_sandbox.py and the replay tests run
# it under the full sandbox (``strict_sandbox=True``) so a restricted call fails the build.
INTERPRETER_MODULES = ("executor.workflow",)


def workflows() -> Sequence[type]:
    return [EnrolledRecord]


def workflow_runner(*, strict_sandbox: bool = False) -> SandboxedWorkflowRunner:
    restrictions = SandboxRestrictions.default
    if not strict_sandbox:
        restrictions = restrictions.with_passthrough_modules(*INTERPRETER_MODULES)
    return SandboxedWorkflowRunner(restrictions=restrictions)


def main_worker(
    client: Client,
    deps: Deps,
    *,
    task_queue: str | None = None,
    strict_sandbox: bool = False,
    **kw: Any,
) -> Worker:
    """Runs EnrolledRecord and every action activity except custom code."""
    return Worker(
        client,
        task_queue=task_queue or deps.settings.temporal.task_queue,
        workflows=list(workflows()),
        activities=[*build_internal_activities(deps), *build_action_activities(deps)],
        workflow_runner=workflow_runner(strict_sandbox=strict_sandbox),
        **kw,
    )


def custom_code_worker(
    client: Client, deps: Deps, *, task_queue: str | None = None, **kw: Any
) -> Worker:
    """Runs only custom-code actions, on their own queue (own scaling, own blast radius)."""
    return Worker(
        client,
        task_queue=task_queue or deps.settings.temporal.custom_code_task_queue,
        activities=build_action_activities(deps, queue="custom_code"),
        activity_executor=ThreadPoolExecutor(4),
        **kw,
    )

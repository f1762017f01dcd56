"""Temporal workers of the executor: the main one (interpreter + actions) and custom code."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from executor.activities.base import Deps, build_action_activities
from executor.activities.internal import build_internal_activities
from executor.workflow import EnrolledRecord


def workflows() -> Sequence[type]:
    return [EnrolledRecord]


def main_worker(client: Client, deps: Deps, *, task_queue: str | None = None, **kw: Any) -> Worker:
    """Runs EnrolledRecord and every action activity except custom code."""
    return Worker(
        client,
        task_queue=task_queue or deps.settings.temporal.task_queue,
        workflows=list(workflows()),
        activities=[*build_internal_activities(deps), *build_action_activities(deps)],
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

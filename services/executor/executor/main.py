"""Composition root of the executor: Temporal worker(s) + the ExecutorService gRPC server.

``role="main"`` runs the EnrolledRecord interpreter and every action activity except custom
code; ``role="custom-code"`` runs only the custom-code queue (``crmflow serve executor --role
custom-code``), so user code scales and fails apart from the rest. Health reports SERVING only
once the worker polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

from temporalio.worker import Worker

from crmflow.grpc.server import RunningServer, start_server, wait_for_termination
from crmflow.settings import Settings
from crmflow.temporal.client import connect
from executor.activities.base import Deps
from executor.activities.custom_code import landlock_abi
from executor.db import migrate
from executor.history import History
from executor.resolver import GrpcResolver, InputResolver, LocalTokens
from executor.servicer import binding
from executor.worker import custom_code_worker, main_worker

SERVICE_NAME = "executor"
PRUNE_EVERY_SECONDS = 6 * 3600
log = logging.getLogger("crmflow.executor")

Role = Literal["main", "custom-code"]


def open_store(settings: Settings):  # type: ignore[no-untyped-def]
    from crmflow.records.factory import open_record_store

    return open_record_store(settings)


async def start(
    settings: Settings,
    *,
    port: int | None = None,
    role: Role = "main",
    resolver: InputResolver | None = None,
) -> RunningServer:
    from crmflow.db import create_engine

    url = settings.service_database_url("executor")
    await migrate(url)
    engine = create_engine(url)
    store = await _maybe_await(open_store(settings))
    history = History(engine)
    resolver = resolver or GrpcResolver(settings, LocalTokens(store))
    deps = Deps(settings=settings, store=store, resolver=resolver, history=history)
    client = await connect(settings.temporal)
    worker: Worker = (
        custom_code_worker(client, deps) if role == "custom-code" else main_worker(client, deps)
    )
    running = await start_server(
        [binding(history)],
        settings=settings,
        port=settings.port_for(SERVICE_NAME) if port is None else port,
    )
    await running.set_serving(False)  # not until the worker polls
    worker_task = asyncio.create_task(worker.run(), name=f"executor-worker-{role}")
    # Worker.run validates and starts polling promptly; a failure surfaces here.
    await asyncio.sleep(0.2)
    if worker_task.done():
        await running.stop(0)
        await engine.dispose()
        worker_task.result()
    await running.set_serving(True)
    prune_task = asyncio.create_task(_prune_forever(history)) if role == "main" else None

    async def stop_worker() -> None:
        if prune_task:
            prune_task.cancel()
        await worker.shutdown()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker_task
        await resolver.close()
        close = getattr(store, "close", None)
        if close is not None:
            await _maybe_await(close())
        await engine.dispose()

    running.on_stop.append(stop_worker)
    log.info("executor (%s) worker on %s", role, worker.task_queue)
    if role == "custom-code":
        _report_isolation(settings)
    return running


def _report_isolation(settings: Settings) -> None:
    abi = landlock_abi()
    if abi:
        log.info("custom code is confined with Landlock (ABI %d)", abi)
    elif settings.custom_code_isolation == "required":
        log.warning(
            "this kernel (or the container's seccomp profile) offers no Landlock: custom code "
            "actions will fail with CustomCodeIsolationUnavailable until it does, or until "
            "CRMFLOW_CUSTOM_CODE_ISOLATION=best-effort (in-process guards only)"
        )
    else:
        log.warning("no Landlock: custom code runs with in-process guards only (best-effort)")


async def _maybe_await(value):  # type: ignore[no-untyped-def]
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value


async def _prune_forever(history: History) -> None:
    """Action logs are kept 90 days."""
    while True:
        try:
            removed = await history.prune()
            if removed:
                log.info("pruned %d run-history rows older than 90 days", removed)
        except Exception:
            log.exception("pruning the run history failed; will retry")
        await asyncio.sleep(PRUNE_EVERY_SECONDS)


async def run(settings: Settings, *, role: Role = "main") -> None:
    running = await start(settings, role=role)
    await wait_for_termination(running, settings.grace_seconds)

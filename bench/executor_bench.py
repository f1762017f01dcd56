"""Executor benchmark: enrolled-record workflows completed per second, vs a bare workflow.

Side by side in one run, on the same Temporal dev server, the same SQLite CRM and the same
local webhook receiver, a 3-step workflow — set a property, a 1-second delay, a webhook:

* ``executor`` — the real EnrolledRecord interpreter with its registered activities (input
  resolution, dedupe keys, run history in the executor's own database, retry policies);
* ``bare`` — a hand-written Temporal workflow doing the same three steps with two plain
  activities (store.update with an idempotency key, an httpx POST).

Sandbox configuration: the executor's worker passes its interpreter module through the
workflow sandbox (executor.worker.INTERPRETER_MODULES; imported once per worker, not once per
run); the bare peer is configured as a hand-written workflow usually is, its module
re-imported per run. ``--bare-passthrough`` gives the bare peer the same treatment, to see
how much of the ratio that configuration accounts for.

    python bench/executor_bench.py [--n 200] [--rounds 3] [--warmup N] [--bytecode-cache]
                                   [--bare-passthrough]

Writes bench/reports/executor.json with both rates and the ratio executor/bare (the goal is
>= 1.0; it is the cost of what the interpreter adds). A few minutes at most.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from executor.activities.base import Deps  # noqa: E402
from executor.db import migrate  # noqa: E402
from executor.history import History  # noqa: E402
from executor.resolver import LocalTokens  # noqa: E402
from executor.worker import main_worker  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import Worker  # noqa: E402
from temporalio.worker.workflow_sandbox import (  # noqa: E402
    SandboxedWorkflowRunner,
    SandboxRestrictions,
)

from bench.executor_bare import BareInput, BareThreeSteps, bare_activities  # noqa: E402
from crmflow.db import create_engine  # noqa: E402
from crmflow.model.actions import Action, Connection  # noqa: E402
from crmflow.model.enrollment import EnrollmentInput, EnrollmentResult  # noqa: E402
from crmflow.model.workflow import WorkflowDefinition  # noqa: E402
from crmflow.records.sql import SqlRecordStore  # noqa: E402
from crmflow.settings import Settings, TemporalSettings  # noqa: E402
from crmflow.temporal import search_attributes  # noqa: E402
from crmflow.temporal.devserver import temporal_cli  # noqa: E402
from crmflow.temporal.plugin import CrmflowPlugin  # noqa: E402

DELAY_SECONDS = 1


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


# -- the executor's definition ----------------------------------------------------------------
def definition(url: str) -> WorkflowDefinition:
    def a(aid: str, t: str, nxt: str = "", **fields: Any) -> Action:
        return Action(
            action_id=aid,
            action_type=t,
            fields=fields,
            connection=Connection(next_action_id=nxt) if nxt else None,
        )

    return WorkflowDefinition(
        workflow_id="bench",
        object_type="contact",
        start_action_id="set",
        actions={
            x.action_id: x
            for x in [
                a("set", "set_property", "wait", property="lifecyclestage", value="lead"),
                a("wait", "delay", "hook", kind="duration", seconds=DELAY_SECONDS),
                a("hook", "send_webhook", url=url),
            ]
        },
    )


async def run_batch(client: Client, starts: list[Any]) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (all threads: workers, SDK core, stores)."""
    t0, c0 = time.perf_counter(), time.process_time()
    handles = await asyncio.gather(*[client.start_workflow(*args, **kw) for args, kw in starts])
    await asyncio.gather(*[h.result() for h in handles])
    return time.perf_counter() - t0, time.process_time() - c0


async def main(
    n: int, rounds: int, warmup: int | None = None, bare_passthrough: bool = False
) -> dict[str, Any]:
    warmup = n if warmup is None else warmup
    ThreadingHTTPServer.request_queue_size = 1024  # the default backlog (5) drops connections
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    tmp = Path(tempfile.mkdtemp(prefix="executor-bench-"))
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=search_attributes.ALL,
        plugins=[CrmflowPlugin()],
        dev_server_log_level="error",
    )
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    settings = Settings(
        data_dir=tmp,
        webhook_allow_private=["127.0.0.1"],
        temporal=TemporalSettings().model_copy(update={"task_queue": queue}),
    )
    store = await SqlRecordStore.open(settings.crm_url(), migrate=True)
    await migrate(settings.service_database_url("executor"))
    engine = create_engine(settings.service_database_url("executor"))
    deps = Deps(
        settings=settings, store=store, resolver=LocalTokens(store), history=History(engine)
    )
    http = httpx.AsyncClient(timeout=30)
    tenant = "bench"
    ids = [
        (await store.create(tenant, "contact", {"email": f"c{i}@example.com"})).record_id
        for i in range(n)
    ]
    defn = definition(url)
    results: dict[str, list[float]] = {"executor": [], "bare": []}
    cpu: dict[str, list[float]] = {"executor": [], "bare": []}
    executor_worker = main_worker(env.client, deps)
    bare_worker = Worker(
        env.client,
        task_queue=f"{queue}-bare",
        workflows=[BareThreeSteps],
        activities=bare_activities(store, http),
        # By default the bare peer runs as a hand-written workflow does: its module re-imported
        # by the sandbox per run. --bare-passthrough gives it the executor's treatment.
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("bench.executor_bare")
        )
        if bare_passthrough
        else SandboxedWorkflowRunner(),
    )
    try:
        async with executor_worker, bare_worker:
            # Round -1 (not reported) warms both up: first connections, statement caches,
            # pooled clients. Without it the first measured batch pays them.
            for r in range(-1, rounds):
                for kind in ("bare", "executor") if r % 2 else ("executor", "bare"):
                    starts: list[Any]
                    if kind == "executor":
                        starts = [
                            (
                                (
                                    "EnrolledRecord",
                                    EnrollmentInput(
                                        tenant_id=tenant,
                                        workflow_id="bench",
                                        revision=1,
                                        object_type="contact",
                                        record_id=rid,
                                        enrollment_number=1,
                                        enrolled_at=datetime.now(UTC),
                                        definition=defn,
                                    ),
                                ),
                                {
                                    "id": f"ex-{r}-{rid}",
                                    "task_queue": queue,
                                    "result_type": EnrollmentResult,
                                },
                            )
                            for rid in ids
                        ]
                    else:
                        starts = [
                            (
                                (
                                    "BareThreeSteps",
                                    BareInput(tenant_id=tenant, record_id=rid, url=url),
                                ),
                                {"id": f"bare-{r}-{rid}", "task_queue": f"{queue}-bare"},
                            )
                            for rid in ids
                        ]
                    if r < 0:
                        starts = starts[:warmup]
                    seconds, cpu_s = await run_batch(env.client, starts)
                    if r < 0:
                        continue
                    results[kind].append(n / seconds)
                    cpu[kind].append(cpu_s * 1000 / n)
                    print(
                        f"round {r} {kind}: {n / seconds:.1f} workflows/s,"
                        f" {cpu_s * 1000 / n:.1f} ms CPU/workflow (worker process)",
                        flush=True,
                    )
    finally:
        await http.aclose()
        await store.close()
        await engine.dispose()
        await env.shutdown()
        server.shutdown()
    best = {k: max(v) for k, v in results.items()}
    # Each round runs both back to back (alternating which goes first): the per-round ratio
    # is the least noisy figure on a shared machine; report their median.
    paired = sorted(e / b for e, b in zip(results["executor"], results["bare"], strict=True))
    median = (
        paired[len(paired) // 2]
        if len(paired) % 2
        else sum(paired[len(paired) // 2 - 1 : len(paired) // 2 + 1]) / 2
    )
    return {
        "benchmark": "executor",
        "workflow": f"set property, {DELAY_SECONDS}s delay, webhook to a local server",
        "workflows_per_round": n,
        "warmup_workflows": warmup,
        "rounds": rounds,
        "executor_workflows_per_s": round(best["executor"], 2),
        "bare_workflows_per_s": round(best["bare"], 2),
        "ratio_executor_to_bare": round(median, 3),
        "ratio_best_rounds": round(best["executor"] / best["bare"], 3),
        "per_round_ratios": [round(x, 3) for x in paired],
        "all_rounds": {k: [round(x, 2) for x in v] for k, v in results.items()},
        # CPU of the bench process (workers, SDK core threads, CRM store, webhook receiver) per
        # completed workflow; the dev server's CPU is not included. Less noisy than wall rates
        # on a shared machine.
        "cpu_ms_per_workflow": {k: [round(x, 1) for x in v] for k, v in cpu.items()},
        "note": "ratio = median of per-round ratios; rates = best round of each; same dev "
        "server, CRM store (SQLite), webhook receiver and worker process",
        "bare_module_passed_through": bare_passthrough,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--warmup", type=int, default=None, help="untimed workflows of each kind (default: --n)"
    )
    p.add_argument(
        "--bytecode-cache",
        action="store_true",
        help="let Python cache bytecode (in a temp dir) even under PYTHONDONTWRITEBYTECODE: the "
        "sandbox re-imports each workflow's module per workflow run, and without cached "
        "bytecode it compiles the module's source every time (bigger module, bigger cost)",
    )
    p.add_argument(
        "--bare-passthrough",
        action="store_true",
        help="pass the bare workflow's module through the sandbox too, as the executor does "
        "with its interpreter (by default the bare peer is configured as a hand-written "
        "workflow usually is: its module re-imported per run)",
    )
    args = p.parse_args()
    if args.bytecode_cache:
        sys.dont_write_bytecode = False
        sys.pycache_prefix = tempfile.mkdtemp(prefix="executor-bench-pyc-")
    report = asyncio.run(main(args.n, args.rounds, args.warmup, args.bare_passthrough))
    report["bytecode_cache"] = not sys.dont_write_bytecode
    out = ROOT / "bench" / "reports" / "executor.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))

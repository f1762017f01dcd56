"""Editor benchmark: edit and validate latency for a 500-action workflow (goal: p99 < 50 ms).

A real editor-api (``editor_api.main.start``, SQLite file in WAL mode by default, PostgreSQL with
``--pg URL``) is driven over gRPC, one request in flight (service time). Side by side in one run:

* ``update_action``  — UpdateAction on an action in the middle of the 500 (a typical edit:
  read, revision check, edit, conditional UPDATE, change log + audit, full draft returned);
* ``add_delete``     — AddAction then DeleteAction (reconnecting) alternately;
* ``validate``       — ValidateWorkflow (minimap layout + every rule; no CRM configured);
* ``get``            — GetWorkflow (the read path: the same draft returned over gRPC);
* peers, same definition: ``raw_db_roundtrip`` (SELECT the draft row + UPDATE the draft text in
  one transaction through the same SQLAlchemy engine, no editor logic), ``json_load_dump``
  (``json.loads`` + ``json.dumps`` of the draft) and ``pydantic_load_dump`` (parse the draft
  into ``WorkflowDefinition`` and dump it back) -- the floor any edit of a document this size pays.

Ratios are subject p50 / peer p50. Writes bench/reports/editor.json.

    python bench/editor_bench.py [--quick] [--actions N] [--iterations N] [--pg URL] [--default-gc]

The server runs in this process with the GC tuning ``main.run`` applies (``--default-gc`` to
measure without it); the shared CI machines are noisy, so p99 moves between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from editor_api.main import start, tune_gc
from google.protobuf import json_format, struct_pb2
from sqlalchemy import text

from crmflow.api.editor.v1 import editor_service_pb2 as pb
from crmflow.api.editor.v1 import editor_service_pb2_grpc as pb_grpc
from crmflow.api.workflow.v1 import workflow_pb2 as wf
from crmflow.db import create_engine
from crmflow.model.workflow import WorkflowDefinition
from crmflow.settings import Settings


def struct(data: dict[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(data, struct_pb2.Struct())


REPORT = Path(__file__).resolve().parent / "reports" / "editor.json"
TENANT = "bench"


def definition(n: int) -> dict[str, Any]:
    actions = {}
    for i in range(n):
        a: dict[str, Any] = {
            "action_id": f"a{i}",
            "action_type": "set_property" if i % 2 else "delay",
            "label": f"Step {i}",
            "fields": {"property": "firstname", "value": f"Hello {{{{ sources.co.name }}}} {i}"}
            if i % 2
            else {"seconds": 3600},
        }
        if i + 1 < n:
            a["connection"] = {"next_action_id": f"a{i + 1}"}
        actions[f"a{i}"] = a
    return {
        "object_type": "contact",
        "name": "Bench",
        "start_action_id": "a0",
        "actions": actions,
        "data_sources": [
            {"source_id": "co", "kind": "DATA_SOURCE_KIND_ASSOCIATED", "object_type": "company"}
        ],
    }


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def summary(name: str, samples_ms: list[float]) -> dict[str, Any]:
    return {
        "name": name,
        "n": len(samples_ms),
        "p50_ms": round(statistics.median(samples_ms), 3),
        "p99_ms": round(pct(samples_ms, 99), 3),
        "mean_ms": round(statistics.fmean(samples_ms), 3),
    }


async def interleaved(
    n: int, cases: list[tuple[str, Callable[[int], Awaitable[Any]]]]
) -> dict[str, list[float]]:
    """Round-robin over the cases, so a stall of this shared machine hits subject and peers
    alike instead of whichever happened to be running (one request in flight)."""
    for i in range(min(5, n)):  # warm-up
        for _, fn in cases:
            await fn(i)
    out: dict[str, list[float]] = {name: [] for name, _ in cases}
    for i in range(n):
        for name, fn in cases:
            t0 = time.perf_counter()
            await fn(i)
            out[name].append((time.perf_counter() - t0) * 1000)
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """SQLite always; PostgreSQL too when ``--pg URL`` is given (same process, same run)."""
    tmp = Path(tempfile.mkdtemp(prefix="editor-bench-"))
    runs = [await run_one(args, f"sqlite+aiosqlite:///{tmp / 'editor.db'}", tmp)]
    if args.pg:
        runs.append(await run_one(args, args.pg, tmp))
    return {
        "benchmark": "editor",
        "actions": args.actions,
        "iterations": args.iterations,
        "python": platform.python_version(),
        "gc_tuned": not args.default_gc,
        "runs": runs,
    }


async def run_one(args: argparse.Namespace, url: str, tmp: Path) -> dict[str, Any]:
    settings = Settings(data_dir=tmp, database_url=url, enrollment_address="127.0.0.1:1")
    running = await start(settings, port=0, properties=None, retry_interval=3600)
    if not args.default_gc:
        tune_gc()  # what ``crmflow serve editor-api`` (main.run) does after start-up
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{running.port}", options=[("grpc.max_receive_message_length", 64 << 20)]
    )
    stub = pb_grpc.EditorServiceStub(channel)
    engine = create_engine(url)
    n, iters = args.actions, args.iterations
    try:
        d = json_format.ParseDict(definition(n), wf.WorkflowDefinition())
        created = await stub.CreateWorkflow(
            pb.CreateWorkflowRequest(tenant_id=TENANT, definition=d)
        )
        wid = created.workflow.definition.workflow_id
        mid = f"a{n // 2 + 1}"

        async def update_action(i: int) -> None:
            await stub.UpdateAction(
                pb.UpdateActionRequest(
                    tenant_id=TENANT,
                    workflow_id=wid,
                    action=wf.Action(
                        action_id=mid,
                        action_type="set_property",
                        label="Edited",
                        fields=struct({"property": "firstname", "value": f"v{i}"}),
                    ),
                )
            )

        added: list[str] = []

        async def add_delete(i: int) -> None:
            if i % 2 == 0:
                r = await stub.AddAction(
                    pb.AddActionRequest(
                        tenant_id=TENANT,
                        workflow_id=wid,
                        action=wf.Action(action_type="delay", fields=struct({"seconds": 60})),
                        position=pb.Position(after_action_id=f"a{n // 3 * 2}"),
                    )
                )
                added.append(r.action_id)
            else:
                await stub.DeleteAction(
                    pb.DeleteActionRequest(tenant_id=TENANT, workflow_id=wid, action_id=added.pop())
                )

        async def validate(i: int) -> None:
            r = await stub.ValidateWorkflow(
                pb.ValidateWorkflowRequest(tenant_id=TENANT, workflow_id=wid)
            )
            assert r.publishable, list(r.issues)[:3]

        async def get(i: int) -> None:
            await stub.GetWorkflow(pb.GetWorkflowRequest(tenant_id=TENANT, workflow_id=wid))

        async def raw_db(i: int) -> None:
            async with engine.begin() as conn:
                row = (
                    await conn.execute(
                        text(
                            "SELECT draft, draft_revision FROM editor_workflows"
                            " WHERE tenant_id=:t AND workflow_id=:w"
                        ),
                        {"t": TENANT, "w": wid},
                    )
                ).one()
                await conn.execute(
                    text(
                        "UPDATE editor_workflows SET draft=:d"
                        " WHERE tenant_id=:t AND workflow_id=:w AND draft_revision=:r"
                    ),
                    {"d": row[0], "t": TENANT, "w": wid, "r": row[1]},
                )

        draft = (
            await stub.GetWorkflow(pb.GetWorkflowRequest(tenant_id=TENANT, workflow_id=wid))
        ).workflow
        doc = json.dumps(
            json_format.MessageToDict(draft.definition, preserving_proto_field_name=True)
        )

        async def json_load_dump(i: int) -> None:
            json.dumps(json.loads(doc))

        async def pydantic_load_dump(i: int) -> None:
            WorkflowDefinition.model_validate_json(doc).model_dump_json()

        cases: list[tuple[str, Callable[[int], Awaitable[Any]]]] = [
            ("update_action", update_action),
            ("add_delete", add_delete),
            ("validate", validate),
            ("get", get),
            ("raw_db_roundtrip", raw_db),
            ("json_load_dump", json_load_dump),
            ("pydantic_load_dump", pydantic_load_dump),
        ]
        samples = await interleaved(iters, cases)
        results = [summary(name, samples[name]) for name, _ in cases]
        by = {r["name"]: r for r in results}
        ratios = {
            f"{s}_vs_{p}": round(by[s]["p50_ms"] / by[p]["p50_ms"], 2)
            for s in ("update_action", "add_delete", "validate")
            for p in ("raw_db_roundtrip", "json_load_dump", "pydantic_load_dump")
        }
        goal = {k: by[k]["p99_ms"] < 50.0 for k in ("update_action", "add_delete", "validate")}
        return {
            "name": "postgresql" if url.startswith("postgres") else "sqlite",
            "draft_json_bytes": len(doc),
            "results": results,
            "ratios_p50": ratios,
            "goal_p99_under_50ms": goal,
        }
    finally:
        await channel.close()
        await engine.dispose()
        await running.stop(0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--actions", type=int, default=500)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pg", default="")
    ap.add_argument("--default-gc", action="store_true", help="skip main.tune_gc()")
    a = ap.parse_args()
    if a.quick:
        a.iterations = 30
    report = asyncio.run(main(a))
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))

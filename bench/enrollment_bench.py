"""Enrollment benchmark: record-change events evaluated per second against N active workflows.

Side by side in one run, on the same workflows and the same events:

* ``index`` — the service's hot path (``enrollment.trigger_index.TriggerIndex.match``: the
  transition index evaluates criteria terms as bitsets per property and decides the flips of
  criteria without association / over-large OR parts on both states; the compiled criteria
  confirm only the others), as installed: ``crmflow.criteria.index`` compiled with mypyc
  (setup.py; ``index_build`` says which build ran);
* ``pure_python_index`` — the same code run as Python source (``bench/pure_index.py``): what
  the compilation gives (``compiled_over_pure_python``);
* ``naive`` — a scan: every workflow's compiled criteria on the new record (and the old one
  when the new one matches);
* ``zen`` — GoRules zen-engine: one decision table, one row per workflow (the criteria as one
  expression cell), collect hit policy, evaluated on the new record.

Plus the p99 event-to-workflow-start latency through the real gRPC service and the Temporal dev
server at 50 events/s, and the memory of 10,000 compiled active workflows.

Two workloads, both reported:

* ``hot`` (``throughput``) — a stress case. Events change 1-3 properties, mostly the
  hottest ones (stage, score, owner, counters, last activity), and criteria are random 3-8
  condition mixes over ~50 properties. "Enrollments per event" grows with the number of
  workflows (~2 at 1,000, ~14 at 10,000): every event flips a roughly fixed share (0.15-0.2%) of
  the workflows, and the index agrees with the scan on every checked event, so it is the
  workload, not a miss or a duplicate. What drives it: an event's old ``last_activity`` is
  drawn uniformly from the last 500 days and the new one is "now", so most activity events
  move a dormant record into every "last activity within N days" / "after <date>" window,
  and many criteria are otherwise broad (``neq`` / ``not_in`` on custom properties that are
  often empty). Real portals see more events from already-active records (no flip), so this
  over-states both the flips and the work per event; it is kept as the pessimistic case.
* ``segmented`` — the same workflows each also target one of 500 campaigns, the common
  shape of a portal where most workflows serve one campaign, product or form.

    python bench/enrollment_bench.py [--quick] [--no-latency] [--out PATH]

Writes bench/reports/enrollment.json. Runs in a few minutes on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.integration.enrollment.standin (latency stand-in)
sys.path.insert(0, str(ROOT / "bench"))  # pure_index

import pure_index  # noqa: E402
from enrollment.compiled import EMPTY, CompiledWorkflow, compile_revision  # noqa: E402
from enrollment.trigger_index import TriggerIndex  # noqa: E402

from crmflow.criteria import index as criteria_index  # noqa: E402
from crmflow.model.criteria import FilterGroup  # noqa: E402
from crmflow.model.records import ChangeEvent, ChangeEventType, PropertyChange  # noqa: E402
from crmflow.model.workflow import PublishedRevision, WorkflowDefinition  # noqa: E402

NOW = datetime(2026, 6, 1, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAY_MS = 86_400_000
TENANT = "bench"

ENUMS: dict[str, list[str]] = {
    "lifecycle": ["subscriber", "lead", "mql", "sql", "opportunity", "customer", "evangelist"],
    "lead_status": ["new", "open", "in_progress", "qualified", "unqualified", "bad_timing"],
    "country": ["DK", "SE", "NO", "DE", "UK", "US", "FR", "NL", "FI", "ES"],
    "industry": [
        "software",
        "retail",
        "finance",
        "health",
        "education",
        "manufacturing",
        "media",
        "energy",
        "logistics",
        "public",
    ],
    "source": ["organic", "paid", "referral", "email", "social", "event", "partner"],
    "plan": ["free", "starter", "pro", "enterprise"],
    "language": ["da", "en", "sv", "de", "no", "fi"],
    "owner": [f"u{i}" for i in range(40)],
    # Custom properties: real portals have hundreds; 30 with 8 options each here.
    **{f"cf_{i}": [f"v{j}" for j in range(8 + i)] for i in range(30)},
}
NUMBERS: dict[str, tuple[int, int]] = {
    "score": (0, 100),
    "company_size": (1, 10_000),
    "revenue": (0, 1_000_000),
    "nps": (0, 10),
    "deal_count": (0, 20),
    "page_views": (0, 500),
}
DATES = ["created", "last_activity", "renewal_date"]
TEXT: dict[str, list[str]] = {
    "email": ["anna@acme.dk", "bo@example.com", "carl@shop.se", "dora@corp.io", "eva@acme.dk"],
    "job_title": ["CEO", "CTO", "Head of Sales", "Marketing Manager", "Engineer", "Student"],
    "city": ["Aarhus", "Odense", "Aalborg", "København", "Malmö", "Oslo", "Berlin", "London"],
}
TAGS = ["vip", "newsletter", "webinar", "trial", "partner", "churn_risk", "beta"]


def _filter(rng: random.Random) -> dict[str, Any]:
    kind = rng.choices(["enum", "number", "date", "text", "tags", "known"], [55, 18, 10, 10, 5, 2])[
        0
    ]
    if kind == "enum":
        p = rng.choice(list(ENUMS))
        op = rng.choices(["eq", "in", "neq", "not_in"], [60, 25, 8, 7])[0]
        if op in ("in", "not_in"):
            return {"property": p, "operator": op, "values": rng.sample(ENUMS[p], 2)}
        return {"property": p, "operator": op, "value": rng.choice(ENUMS[p])}
    if kind == "number":
        p = rng.choice(list(NUMBERS))
        lo, hi = NUMBERS[p]
        op = rng.choice(["gt", "gte", "lt", "lte", "between"])
        if op == "between":
            a, b = sorted(rng.sample(range(lo, hi + 1), 2))
            return {"property": p, "operator": op, "values": [a, b]}
        return {"property": p, "operator": op, "value": rng.randint(lo, hi)}
    if kind == "date":
        p = rng.choice(DATES)
        op = rng.choice(["after", "before", "within_last_days"])
        if op == "within_last_days":
            return {"property": p, "operator": op, "value": rng.choice([7, 30, 90])}
        d = (NOW - timedelta(days=rng.randint(0, 400))).date().isoformat()
        return {"property": p, "operator": op, "value": d}
    if kind == "text":
        p = rng.choice(list(TEXT))
        op = rng.choice(["contains", "starts_with", "eq"])
        v = rng.choice(TEXT[p])
        return {"property": p, "operator": op, "value": v[:4] if op != "eq" else v}
    if kind == "tags":
        return {"property": "tags", "operator": "in", "values": rng.sample(TAGS, 2)}
    return {"property": rng.choice(list(ENUMS) + DATES), "operator": "is_known"}


def criteria(rng: random.Random) -> dict[str, Any]:
    """3-8 conditions in one of three shapes: AND; AND with an OR group; OR of AND groups."""
    n = rng.randint(3, 8)
    shape = rng.choices(["and", "and_or", "or_of_and"], [50, 25, 25])[0]
    if shape == "or_of_and" and n < 4:
        shape = "and"  # an OR of two single conditions is not a segment anyone builds
    fs = [_filter(rng) for _ in range(n)]
    if shape == "and":
        return {"conjunction": "CONJUNCTION_AND", "filters": fs}
    if shape == "and_or":
        k = rng.randint(2, min(3, n - 1))
        return {
            "conjunction": "CONJUNCTION_AND",
            "filters": fs[k:],
            "groups": [{"conjunction": "CONJUNCTION_OR", "filters": fs[:k]}],
        }
    k = n // 2
    return {
        "conjunction": "CONJUNCTION_OR",
        "groups": [
            {"conjunction": "CONJUNCTION_AND", "filters": fs[:k]},
            {"conjunction": "CONJUNCTION_AND", "filters": fs[k:]},
        ],
    }


CAMPAIGNS = 500


def workflows(n: int, seed: int = 1, *, segmented: bool = False) -> list[PublishedRevision]:
    """``segmented``: every workflow also targets one campaign (of 500) — the common shape of
    a portal where most workflows serve one campaign, product or form."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        flt = criteria(rng)
        if segmented:
            flt = {
                "conjunction": "CONJUNCTION_AND",
                "filters": [
                    {
                        "property": "campaign",
                        "operator": "eq",
                        "value": f"c{rng.randrange(CAMPAIGNS)}",
                    }
                ],
                "groups": [flt],
            }
        triggers: list[dict[str, Any]] = [{"criteria": {"filter": flt}}]
        if rng.random() < 0.1:
            p = rng.choice(list(ENUMS))
            triggers.append(
                {
                    "event": {
                        "event_type": "EVENT_TYPE_PROPERTY_CHANGED",
                        "property": p,
                        "to_values": [rng.choice(ENUMS[p])],
                    }
                }
            )
        enrollment: dict[str, Any] = {"triggers": triggers}
        if rng.random() < 0.2:
            enrollment["goal"] = {
                "filters": [{"property": "lifecycle", "operator": "eq", "value": "customer"}]
            }
        if rng.random() < 0.15:
            enrollment["unenroll_when_criteria_not_met"] = True
        d = WorkflowDefinition.model_validate(
            {
                "workflow_id": f"wf-{i}",
                "tenant_id": TENANT,
                "object_type": "contact",
                "enrollment": enrollment,
            }
        )
        out.append(
            PublishedRevision(
                tenant_id=TENANT, workflow_id=f"wf-{i}", revision=1, published_at=NOW, definition=d
            )
        )
    return out


def _value(rng: random.Random, p: str) -> Any:
    if p in ENUMS:
        return rng.choice(ENUMS[p])
    if p in NUMBERS:
        return rng.randint(*NUMBERS[p])
    if p in DATES:
        return NOW_MS - rng.randint(0, 500) * DAY_MS
    if p in TEXT:
        return rng.choice(TEXT[p])
    return rng.sample(TAGS, rng.randint(0, 3))


ALL_PROPS = [*ENUMS, *NUMBERS, *DATES, *TEXT, "tags"]
# Properties that change most often in a CRM (stage moves, scores, activity).
HOT = ["lifecycle", "lead_status", "score", "last_activity", "owner", "deal_count", "page_views"]


def _next_value(rng: random.Random, p: str, old: Any) -> Any:
    """How hot properties really move: stages advance, counters grow, activity becomes now."""
    if p == "lifecycle" and old in ENUMS[p]:
        stages = ENUMS[p]
        return (
            stages[min(stages.index(old) + 1, len(stages) - 1)]
            if rng.random() < 0.8
            else rng.choice(stages)
        )
    if p in ("deal_count", "page_views") and isinstance(old, int):
        return old + rng.randint(1, 3)
    if p == "score" and isinstance(old, int):
        return max(0, min(100, old + rng.randint(-10, 10)))
    if p == "last_activity":
        return NOW_MS - rng.randint(0, 3600_000)
    return _value(rng, p)


def events(k: int, seed: int = 2) -> list[tuple[ChangeEvent, dict[str, Any]]]:
    rng = random.Random(seed)
    out = []
    for i in range(k):
        # core properties are mostly filled in, custom ones often empty (as in real portals)
        snap = {
            p: _value(rng, p)
            for p in ALL_PROPS
            if rng.random() < (0.5 if p.startswith("cf_") else 0.9)
        }
        changes = []
        picked = sorted(
            set(rng.choices(HOT, k=rng.randint(1, 2)) + rng.choices(ALL_PROPS, k=rng.randint(0, 1)))
        )
        snap["campaign"] = f"c{rng.randrange(CAMPAIGNS)}"
        for p in picked:
            old = snap.get(p)
            new = _next_value(rng, p, old)
            snap[p] = new
            changes.append(PropertyChange(property=p, old_value=old, new_value=new))
        ev = ChangeEvent(
            event_id=f"e{i}",
            tenant_id=TENANT,
            event_type=ChangeEventType.RECORD_UPDATED,
            object_type="contact",
            record_id=f"c{i}",
            occurred_at=NOW,
            changes=changes,
        )
        out.append((ev, snap))
    return out


def naive(cws: list[CompiledWorkflow], ev: ChangeEvent, snap: dict[str, Any]) -> set[str]:
    """Every criteria trigger of every workflow, no index."""
    old = dict(snap)
    for c in ev.changes:
        old[c.property] = c.old_value
    hits = set()
    for cw in cws:
        for (role, _i), (_g, m) in cw.criteria.items():
            if role == "enroll" and m(snap, NOW, EMPTY) and not m(old, NOW, EMPTY):
                hits.add(cw.workflow_id)
    return hits


def timed(fn: Any, items: list[Any], budget: float) -> tuple[float, int]:
    """(events per CPU second, events run) — runs items until the budget is spent.

    CPU time of this process (``process_time``), not wall time: the figure is "on one core"
    even when the machine is shared, and the three contenders are measured the same way.
    """
    gc.collect()
    t0 = time.process_time()
    n = 0
    for item in items:
        fn(item)
        n += 1
        if n % 16 == 0 and time.process_time() - t0 > budget:
            break
    return n / (time.process_time() - t0), n


# --- zen-engine -----------------------------------------------------------------------------


def _zen_literal(v: Any) -> str:
    if isinstance(v, str):
        return "'" + v.replace("'", "\\'") + "'"
    return json.dumps(v)


def _zen_ms(v: Any) -> int:
    return int(datetime.fromisoformat(v).replace(tzinfo=UTC).timestamp() * 1000)


def zen_expr(g: FilterGroup) -> str:
    parts = []
    for f in g.filters:
        p, op = f.property, f.operator
        if op == "eq":
            parts.append(f"{p} == {_zen_literal(f.value)}")
        elif op == "neq":
            parts.append(f"{p} != {_zen_literal(f.value)}")
        elif op == "in":
            if p == "tags":
                parts.append(
                    "("
                    + " or ".join(f"contains({p} ?? [], {_zen_literal(v)})" for v in f.values)
                    + ")"
                )
            else:
                parts.append(f"{p} in [{', '.join(_zen_literal(v) for v in f.values)}]")
        elif op == "not_in":
            parts.append(f"not ({p} in [{', '.join(_zen_literal(v) for v in f.values)}])")
        elif op in ("gt", "gte", "lt", "lte"):
            sym = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
            parts.append(f"({p} != null and {p} {sym} {f.value})")
        elif op == "between":
            parts.append(f"({p} != null and {p} >= {f.values[0]} and {p} <= {f.values[1]})")
        elif op in ("after", "before"):
            sym = ">" if op == "after" else "<"
            parts.append(f"({p} != null and {p} {sym} {_zen_ms(f.value)})")
        elif op == "within_last_days":
            parts.append(
                f"({p} != null and {p} >= {NOW_MS - int(f.value) * DAY_MS} and {p} <= {NOW_MS})"
            )
        elif op == "contains":
            parts.append(f"contains(lower({p} ?? ''), {_zen_literal(str(f.value).lower())})")
        elif op == "starts_with":
            parts.append(f"startsWith(lower({p} ?? ''), {_zen_literal(str(f.value).lower())})")
        elif op == "is_known":
            parts.append(f"{p} != null")
        else:
            raise ValueError(op)
    parts += [f"({zen_expr(sub)})" for sub in g.groups]
    joiner = " or " if g.conjunction.value == "CONJUNCTION_OR" else " and "
    return joiner.join(parts) or "true"


def zen_decision(revs: list[PublishedRevision]) -> Any:
    import zen

    rules = []
    for r in revs:
        t = r.definition.enrollment.triggers[0]
        assert t.criteria is not None
        rules.append(
            {
                "_id": r.workflow_id,
                "c": zen_expr(t.criteria.filter),
                "o": _zen_literal(r.workflow_id),
            }
        )
    content = {
        "nodes": [
            {"id": "in", "type": "inputNode", "name": "Request", "position": {"x": 0, "y": 0}},
            {
                "id": "dt",
                "type": "decisionTableNode",
                "name": "Enrollment",
                "position": {"x": 200, "y": 0},
                "content": {
                    "hitPolicy": "collect",
                    "inputs": [{"id": "c", "name": "criteria"}],
                    "outputs": [{"id": "o", "name": "workflow", "field": "workflow"}],
                    "rules": rules,
                },
            },
            {"id": "out", "type": "outputNode", "name": "Response", "position": {"x": 400, "y": 0}},
        ],
        "edges": [
            {"id": "e1", "sourceId": "in", "targetId": "dt", "type": "edge"},
            {"id": "e2", "sourceId": "dt", "targetId": "out", "type": "edge"},
        ],
    }
    return zen.ZenEngine().create_decision(json.dumps(content))


# --- throughput ---------------------------------------------------------------------------


def throughput(
    n: int, evs: list[tuple[ChangeEvent, dict[str, Any]]], budget: float, *, segmented: bool = False
) -> dict[str, Any]:
    revs = workflows(n, segmented=segmented)
    cws = [compile_revision(r) for r in revs]
    index = TriggerIndex()
    pure = pure_index.trigger_index_class()()  # the same code run as Python source
    for cw in cws:
        index.put(cw)
        pure.put(cw)

    # as the service calls it: with the workflows the record is enrolled in (here 3), so the
    # leaving rules (goal, unenrollment, criteria no longer met) are worked out for those
    rng = random.Random(3)
    enrolled = {ev.event_id: {f"wf-{rng.randrange(n)}" for _ in range(3)} for ev, _ in evs}

    def via_index(item: tuple[ChangeEvent, dict[str, Any]]) -> Any:
        return index.match(item[0], item[1], NOW, enrolled[item[0].event_id])

    def via_pure(item: tuple[ChangeEvent, dict[str, Any]]) -> Any:
        return pure.match(item[0], item[1], NOW, enrolled[item[0].event_id])

    # correctness first: the index finds exactly what the scan finds
    check = evs[:200]
    mismatches = 0
    candidates = 0
    for ev, snap in check:
        got = {
            m.workflow.workflow_id
            for m in index.match(ev, snap, NOW)
            if m.role == "enroll" and m.kind == "criteria"
        }
        mismatches += got != naive(cws, ev, snap)
        candidates += len(got)
    idx_rate, idx_n = timed(via_index, evs, budget)
    pure_rate, pure_n = timed(via_pure, evs, budget)
    naive_rate, naive_n = timed(lambda it: naive(cws, it[0], it[1]), evs, budget)
    decision = zen_decision(revs)
    zen_rate, zen_n = timed(lambda it: decision.evaluate(it[1]), evs, budget)
    return {
        "active_workflows": n,
        "index_events_per_s": round(idx_rate),
        "index_build": "compiled (mypyc)" if criteria_index.compiled() else "pure Python",
        "pure_python_index_events_per_s": round(pure_rate),
        "compiled_over_pure_python": round(idx_rate / pure_rate, 2),
        "naive_scan_events_per_s": round(naive_rate, 1),
        "zen_engine_events_per_s": round(zen_rate, 1),
        "speedup_vs_naive": round(idx_rate / naive_rate, 1),
        "speedup_vs_zen": round(idx_rate / zen_rate, 1),
        "events_measured": {"index": idx_n, "pure": pure_n, "naive": naive_n, "zen": zen_n},
        "index_agrees_with_scan": mismatches == 0,
        "enrollments_per_event": round(candidates / len(check), 3),
    }


def memory(n: int) -> dict[str, Any]:
    gc.collect()
    tracemalloc.start()
    revs = workflows(n)
    index = TriggerIndex()
    for r in revs:
        index.put(compile_revision(r))
    # the index builds its masks before the first event and caches masks per value as events
    # come: measured in that steady state, not right after the puts
    for ev, snap in events(2000):
        index.match(ev, snap, NOW)
    cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "active_workflows": n,
        "bytes": cur,
        "mb": round(cur / 2**20, 1),
        "peak_mb": round(peak / 2**20, 1),
        "note": "revisions + compiled matchers + index (built, after 2,000 events)",
    }


# --- latency through gRPC + Temporal --------------------------------------------------------


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


WORKER_SNIPPET = """
import asyncio, os
from temporalio.client import Client
from temporalio.worker import Worker
from crmflow.temporal.plugin import CrmflowPlugin
from tests.integration.enrollment.standin import QuickEnrolledRecord

async def main():
    client = await Client.connect(os.environ["TEMPORAL_ADDRESS"], plugins=[CrmflowPlugin()])
    async with Worker(client, task_queue=os.environ["CRMFLOW_TASK_QUEUE"],
                      workflows=[QuickEnrolledRecord]):
        print("ready", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


SERVER_SNIPPET = """
import asyncio, gc, sys
from crmflow.records.sql import SqlRecordStore
from crmflow.settings import Settings
from enrollment.main import start

async def main():
    settings = Settings()
    records = await SqlRecordStore.open(settings.sqlite_url("crm"))
    running = await start(settings, port=0, records=records)
    gc.freeze()  # as enrollment.main.run does
    print(running.port, flush=True)
    await running.server.wait_for_termination()

asyncio.run(main())
"""


async def latency(rate: float, seconds: float) -> dict[str, Any]:
    import tempfile

    import grpc
    from temporalio.testing import WorkflowEnvironment

    from crmflow.api.crm.v1 import records_pb2
    from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb
    from crmflow.api.enrollment.v1 import enrollment_service_pb2_grpc as pb_grpc
    from crmflow.api.workflow.v1 import workflow_pb2
    from crmflow.model.convert import to_proto
    from crmflow.temporal import search_attributes
    from crmflow.temporal.devserver import temporal_cli
    from crmflow.temporal.plugin import CrmflowPlugin

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=search_attributes.ALL,
        plugins=[CrmflowPlugin()],
        dev_server_log_level="error",
    )
    tq = f"bench-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        target = env.client.service_client.config.target_host
        # The service runs in its own process, as deployed: the load generator, the stand-in
        # EnrolledRecord worker and the dev server do not share its interpreter.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SERVER_SNIPPET,
            env={
                **os.environ,
                "CRMFLOW_DATA_DIR": tmp,
                "TEMPORAL_ADDRESS": target,
                "CRMFLOW_TASK_QUEUE": tq,
                "CRMFLOW_LOG_LEVEL": "WARNING",
            },
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        port = int((await proc.stdout.readline()).decode().strip())
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stub = pb_grpc.EnrollmentServiceStub(channel)
        try:
            # the stand-in EnrolledRecord worker runs in a third process (as the executor
            # would), so its workflow tasks do not delay this process's timing of responses
            worker = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WORKER_SNIPPET,
                env={
                    **os.environ,
                    "TEMPORAL_ADDRESS": target,
                    "CRMFLOW_TASK_QUEUE": tq,
                    "PYTHONPATH": str(ROOT),  # tests.integration.enrollment.standin
                },
                stdout=asyncio.subprocess.PIPE,
            )
            assert worker.stdout is not None
            await worker.stdout.readline()
            try:
                for rev in workflows(1000)[:200]:
                    await stub.ActivateRevision(
                        pb.ActivateRevisionRequest(
                            tenant_id=TENANT, revision=to_proto(rev, workflow_pb2.PublishedRevision)
                        )
                    )
                lead = workflows(1)[0].model_copy(update={"workflow_id": "wf-lead"})
                lead.definition.enrollment.triggers[0].criteria.filter = FilterGroup.model_validate(  # type: ignore[union-attr]
                    {"filters": [{"property": "lifecycle", "operator": "eq", "value": "lead"}]}
                )
                await stub.ActivateRevision(
                    pb.ActivateRevisionRequest(
                        tenant_id=TENANT, revision=to_proto(lead, workflow_pb2.PublishedRevision)
                    )
                )
                lat: list[float] = []
                enrolled = 0

                async def one(i: int) -> None:
                    nonlocal enrolled
                    ev = ChangeEvent(
                        event_id=uuid.uuid4().hex,
                        tenant_id=TENANT,
                        event_type=ChangeEventType.RECORD_UPDATED,
                        object_type="contact",
                        record_id=f"lat-{i}",
                        occurred_at=datetime.now(UTC),
                        changes=[
                            PropertyChange(
                                property="lifecycle", old_value="subscriber", new_value="lead"
                            )
                        ],
                        properties={"lifecycle": "lead", "score": 50},
                    )
                    t0 = time.perf_counter()
                    res = await stub.IngestEvents(
                        pb.IngestEventsRequest(
                            tenant_id=TENANT, events=[to_proto(ev, records_pb2.ChangeEvent)]
                        )
                    )
                    lat.append((time.perf_counter() - t0) * 1000)
                    enrolled += sum(o.outcome == "enrolled" for o in res.results[0].outcomes)

                cpu0 = _proc_cpu(proc.pid)
                tasks = []
                total = int(rate * seconds)
                t_start = time.perf_counter()
                for i in range(total):
                    await asyncio.sleep(max(0.0, t_start + i / rate - time.perf_counter()))
                    tasks.append(asyncio.create_task(one(i)))
                await asyncio.gather(*tasks)
                service_cpu_ms = (_proc_cpu(proc.pid) - cpu0) * 1000 / max(1, total)
            finally:
                worker.terminate()
                await worker.wait()
        finally:
            await channel.close()
            proc.terminate()
            await proc.wait()
            await env.shutdown()
    lat.sort()
    return {
        "events_per_s": rate,
        "events": len(lat),
        "enrollments": enrolled,
        "active_workflows": 201,
        "p50_ms": round(statistics.median(lat), 1),
        "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 1),
        "max_ms": round(lat[-1], 1),
        "service_cpu_ms_per_event": round(service_cpu_ms, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "measured": "IngestEvents call until its response; the response is sent after "
        "Temporal accepted the EnrolledRecord start (ledger row committed first)",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller budgets (smoke run)")
    ap.add_argument(
        "--no-latency",
        action="store_true",
        help="skip the latency run; the latency figures of the existing report are kept",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "reports" / "enrollment.json")
    ap.add_argument(
        "--latency-only",
        action="store_true",
        help="re-measure only the latency (kept beside the earlier runs: the figure depends "
        "on how busy the machine is, recorded as load_average_1m)",
    )
    args = ap.parse_args()
    out: Path = args.out
    if args.latency_only:
        saved: dict[str, Any] = json.loads(out.read_text())
        runs = saved.setdefault("latency_runs", [])
        if "latency" in saved and saved["latency"] not in runs:
            runs.append(saved["latency"])
        run = asyncio.run(latency(50.0, 12.0))
        runs.append(run)
        # the least loaded run stands as "latency"; every run stays in latency_runs
        saved["latency"] = min(runs, key=lambda r: r["load_average_1m"])
        out.write_text(json.dumps(saved, indent=2) + "\n")
        print(json.dumps(run, indent=2))
        return
    budget = 0.5 if args.quick else 3.0
    evs = events(60_000)
    report: dict[str, Any] = {
        "benchmark": "enrollment",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "workload": "contact updates changing 1-3 properties (mostly stage/score/activity), "
        "record snapshot of ~30 properties; workflows with 3-8 conditions "
        "(AND / AND+OR group / OR of ANDs; eq, in, neq, not_in, gt, gte, lt, lte, "
        "between, after, before, within_last_days, contains, starts_with, is_known); "
        "10% with an extra property-changed event trigger, 20% with a goal, 15% "
        "unenroll when criteria are no longer met",
        "throughput": [throughput(n, evs, budget) for n in (1_000, 10_000)],
        "throughput_segmented": {
            "workload": "the same workflows, each also targeting one of 500 campaigns "
            "(records carry a campaign)",
            "results": [throughput(n, evs, budget, segmented=True) for n in (1_000, 10_000)],
        },
        "memory": memory(10_000),
        "targets": {
            "events_per_s_at_1k": 100_000,
            "events_per_s_at_10k": 20_000,
            "speedup_vs_zen": 100,
            "p99_latency_ms": 50,
        },
    }
    if not args.no_latency:
        report["latency"] = asyncio.run(latency(50.0, 6.0 if args.quick else 12.0))
    elif out.exists():  # throughput re-measured only: the latency runs stay as they were
        saved = json.loads(out.read_text())
        for k in ("latency", "latency_runs"):
            if k in saved:
                report[k] = saved[k]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

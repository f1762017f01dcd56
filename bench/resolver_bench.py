"""Resolver benchmark: resolutions/s and p99 for an action with 5 data sources.

Embedded CRM store (SQLite file, WAL), one tenant with N contacts, each with a company (primary
label), deals, a ticket, companies matching the email domain and a custom ``listing`` object.
The action reads all 5 sources (associated primary company, most recent deal, most recent
ticket, company by email domain, listing by value) plus contact properties, HTML-escaped.

Side by side in one run:

* ``resolver_cold``  — ``Resolver.resolve`` with no record cache, every resolution a new
  enrollment step: all look-ups hit the store, as ONE ``RecordStore.resolve_sources`` call
  (the SQL store's single UNION ALL statement, reduce in SQL);
* ``resolver_cold_one_by_one`` — peer: the same, but the sources resolved through the port's
  single-record calls (the port's default ``resolve_sources``, sources overlapped: ~11 reads,
  the resolver before the batched read);
* ``resolver_new_step`` — the service's embedded-mode setup (step cache + cross-step record
  cache): every resolution a new step on records an earlier step read (a workflow's later
  actions, other workflows on the same record);
* ``resolver_warm``  — the same step resolved again (executor retries): the step cache;
* ``resolver_enrollment`` — enrollments of 4 actions each, the record and its company changed
  (invalidated) just before the first action: 1 store-bound step in 4;
* ``direct_store``   — peer: the same look-ups written as plain sequential store calls, no cache,
  candidates fetched and reduced in Python (what an action would do on its own);
* ``render_ours`` vs ``render_jinja2_sandbox`` — the token part alone on identical data: our
  logic-less renderer against jinja2's ``SandboxedEnvironment`` (autoescape on).

Concurrency: ``--concurrency`` resolutions in flight (one event loop) for throughput and the
p50/p99 under that load; each resolver case is run again with one resolution in flight for its
service-time p50/p99 (``*_1_in_flight``, what the goal's p99 is checked against).
Writes bench/reports/resolver.json. ``--only resolver_cold`` runs that case alone and writes no
report: for A/B runs against another checkout, e.g. main's sources with this file
(``PYTHONPATH=<main>/src:<main>/services/datasource-resolver python bench/resolver_bench.py
--only resolver_cold``) back to back with this one. The machine is shared: compare in one
sitting, and watch ``uptime``.

Where a cold resolution's CPU goes (issue #7; the service README has the figures): running the
two statements (sqlite3's execute and fetch; SQLite's own code is ~10% of perf's samples, the
GIL released while it steps) about a third; the rest is Python - decoding the 6 rows and
building their Records, planning the statement (its text is compiled once per shape), the
resolver (what the fields read, the step cache, rendering 3 fields), the hop to the reader
thread and back. While the step cache fills (its first 10,000 entries) full GC passes add
~50-70 us a resolution; the 8 s case includes that.

    python bench/resolver_bench.py [--quick] [--contacts N] [--seconds S] [--only CASE,...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from datasource_resolver.cache import StepCache
from datasource_resolver.delegating_store import DelegatingStore
from datasource_resolver.record_cache import CachedReads, RecordCache
from datasource_resolver.resolver import Resolver, ResolveRequest

from crmflow.model.criteria import FilterGroup, PropertyFilter
from crmflow.model.data_sources import DataSource, DataSourceKind, ReduceRule
from crmflow.records.port import (
    Association,
    ObjectTypeDefinition,
    PropertyDefinition,
    PropertyType,
    ResolvedSources,
)
from crmflow.records.sources import email_domain, reduce, resolve_each
from crmflow.records.sql import SqlRecordStore
from crmflow.tokens import Escape, build_context, parse, render_template, resolve_value

REPORT = Path(__file__).resolve().parent / "reports" / "resolver.json"
TENANT = "bench"

SOURCES = [
    DataSource(
        source_id="company",
        kind=DataSourceKind.ASSOCIATED,
        object_type="company",
        association_label="primary",
    ),
    DataSource(
        source_id="deal",
        kind=DataSourceKind.ASSOCIATED,
        object_type="deal",
        reduce=ReduceRule.MOST_RECENTLY_CREATED,
    ),
    DataSource(source_id="ticket", kind=DataSourceKind.ASSOCIATED, object_type="ticket"),
    DataSource(
        source_id="by_domain",
        kind=DataSourceKind.PROPERTY_MATCH,
        object_type="company",
        property="domain",
        enrolled_property="email",
        transform="email_domain",
        reduce=ReduceRule.FIRST_CREATED,
    ),
    DataSource(
        source_id="listing",
        kind=DataSourceKind.PROPERTY_VALUE,
        object_type="listing",
        property="listing_id",
        value="L-7",
    ),
]

FIELDS = {
    "subject": "Hi {{ contact.firstname | capitalize | default: 'there' }} at "
    "{{ sources.company.name }}",
    "body": "<p>Deal {{ sources.deal.dealname }} ({{ sources.deal.amount | number: 2 }}) - "
    "ticket {{ sources.ticket.subject | default: 'none' }} - domain owner "
    "{{ sources.by_domain.name }} - listing {{ sources.listing.price }} - "
    "{{ contact.city | upcase }}</p>",
    "amount": "{{ sources.deal.amount }}",
}
JINJA_FIELDS = {
    "subject": "Hi {{ (contact.firstname or 'there') | capitalize }} at {{ sources.company.name }}",
    "body": "<p>Deal {{ sources.deal.dealname }} ({{ '{:,.2f}'.format(sources.deal.amount) }}) - "
    "ticket {{ sources.ticket.subject or 'none' }} - domain owner "
    "{{ sources.by_domain.name }} - listing {{ sources.listing.price }} - "
    "{{ contact.city | upper }}</p>",
    "amount": "{{ sources.deal.amount }}",
}


class OneByOne(DelegatingStore):
    """The store with ``resolve_sources`` made of the port's single-record calls (peer)."""

    async def resolve_sources(  # type: ignore[override]
        self, tenant_id: str, object_type: str, record_id: str, sources: Any, **kw: Any
    ) -> ResolvedSources:
        return await resolve_each(
            self, tenant_id, object_type, record_id, sources, concurrent=True, **kw
        )


async def seed(store: SqlRecordStore, contacts: int) -> list[str]:
    await store.define_object_type(
        TENANT,
        ObjectTypeDefinition(name="listing", label="Listings", primary_property="listing_id"),
        [
            PropertyDefinition(object_type="listing", name="listing_id", type=PropertyType.STRING),
            PropertyDefinition(object_type="listing", name="price", type=PropertyType.NUMBER),
        ],
    )
    for i in range(20):
        await store.create(TENANT, "listing", {"listing_id": f"L-{i % 10}", "price": 1000 + i})
    ids: list[str] = []
    for i in range(contacts):
        dom = f"firm{i % (contacts // 4 or 1)}.example"
        c = await store.create(
            TENANT,
            "contact",
            {"firstname": f"user{i}", "email": f"user{i}@{dom}", "city": "aarhus"},
        )
        co = await store.create(TENANT, "company", {"name": f"Firm {i}", "domain": dom})
        links = [("company", co.record_id, "primary")]
        for d in range(2):
            deal = await store.create(
                TENANT, "deal", {"dealname": f"D{i}-{d}", "amount": 1000.5 * (d + 1)}
            )
            links.append(("deal", deal.record_id, ""))
        t = await store.create(TENANT, "ticket", {"subject": f"T{i}"})
        links.append(("ticket", t.record_id, ""))
        for ot, rid, label in links:
            await store.associate(
                TENANT,
                Association(
                    from_object_type="contact",
                    from_record_id=c.record_id,
                    to_object_type=ot,
                    to_record_id=rid,
                    label=label,
                ),
            )
        ids.append(c.record_id)
    return ids


def _req(record_id: str, step: str) -> ResolveRequest:
    return ResolveRequest(
        tenant_id=TENANT,
        workflow_id="wf",
        revision=1,
        object_type="contact",
        record_id=record_id,
        action_id="send",
        fields=FIELDS,
        data_sources=SOURCES,
        escapes={"body": Escape.HTML},
        step_key=step,
    )


async def direct(store: SqlRecordStore, record_id: str) -> dict[str, Any]:
    """Peer: the same look-ups as sequential store calls, reduce in Python, no cache."""
    contact = await store.get(TENANT, "contact", record_id)
    found: dict[str, Any] = {}
    for src in SOURCES:
        if src.kind == DataSourceKind.ASSOCIATED:
            assocs = await store.list_associations(
                TENANT, "contact", record_id, src.object_type, label=src.association_label
            )
            recs = await store.batch_get(TENANT, src.object_type, [a.to_record_id for a in assocs])
        else:
            value = (
                email_domain(contact.properties.get("email"))
                if src.kind == DataSourceKind.PROPERTY_MATCH
                else src.value
            )
            group = FilterGroup(
                filters=[PropertyFilter(property=src.property, operator="eq", value=value)]
            )
            recs = (await store.search(TENANT, src.object_type, group, limit=200)).records
        r = reduce(recs, src.reduce)
        found[src.source_id] = r.properties if r else None
    ctx = build_context(object_type="contact", record=contact.properties, sources=found)
    return {
        k: render_template(parse(v), ctx, escape=Escape.HTML).text
        if k == "body"
        else resolve_value(v, ctx)
        for k, v in FIELDS.items()
    }


async def measure(
    name: str,
    op: Callable[[int], Awaitable[Any]],
    seconds: float,
    concurrency: int,
    before: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    lat: list[float] = []
    n = 0
    deadline = time.perf_counter() + seconds
    busy = 0.0

    async def worker(w: int) -> None:
        nonlocal n, busy
        i = w
        while time.perf_counter() < deadline:
            if before is not None:  # untimed set-up (e.g. a change event)
                t_b = time.perf_counter()
                before(i)
                busy += time.perf_counter() - t_b
            t0 = time.perf_counter()
            await op(i)
            lat.append(time.perf_counter() - t0)
            n += 1
            i += concurrency

    t0 = time.perf_counter()
    cpu0 = time.process_time()  # every thread of the process (the SQLite reader's too)
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - t0 - busy
    lat.sort()
    out = {
        "ops": n,
        "per_s": round(n / wall, 1),
        "p50_ms": round(lat[len(lat) // 2] * 1000, 3),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 3),
        "mean_ms": round(statistics.fmean(lat) * 1000, 3),
        # CPU per operation, less sensitive to other load on a shared machine than per_s
        # (includes the untimed set-up of ``before``, if any).
        "cpu_us_per_op": round(cpu / max(n, 1) * 1e6, 1),
    }
    print(f"{name:24s} {out['per_s']:>10,.0f}/s  p50 {out['p50_ms']:.3f} ms  "
          f"p99 {out['p99_ms']:.3f} ms  cpu {out['cpu_us_per_op']:.0f} us/op",
          flush=True)  # fmt: skip
    return out


def bench_render(seconds: float) -> dict[str, dict[str, Any]]:
    from jinja2.sandbox import SandboxedEnvironment

    record = {"firstname": "ann", "email": "ann@firm.example", "city": "aarhus"}
    sources: dict[str, dict[str, Any] | None] = {
        "company": {"name": "Firm <1>"},
        "deal": {"dealname": "D1", "amount": 2001.0},
        "ticket": {"subject": "T1"},
        "by_domain": {"name": "Firm & co"},
        "listing": {"price": 1007},
    }
    ctx = build_context(object_type="contact", record=record, sources=sources)
    env = SandboxedEnvironment(autoescape=True)
    jinja = {k: env.from_string(v) for k, v in JINJA_FIELDS.items()}
    jctx = {"contact": record, "sources": sources}

    def ours() -> Any:
        return {
            k: render_template(parse(v), ctx, escape=Escape.HTML if k == "body" else "none").text
            for k, v in FIELDS.items()
        }

    def theirs() -> Any:
        return {k: t.render(**jctx) for k, t in jinja.items()}

    out: dict[str, dict[str, Any]] = {}
    for name, fn in (("render_ours", ours), ("render_jinja2_sandbox", theirs)):
        lat: list[float] = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            fn()
            lat.append(time.perf_counter() - t0)
        lat.sort()
        out[name] = {
            "ops": len(lat),
            "per_s": round(len(lat) / sum(lat), 1),
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 4),
        }
        print(f"{name:24s} {out[name]['per_s']:>10,.0f}/s  p99 {out[name]['p99_ms']:.4f} ms")
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--contacts", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    ap.add_argument(
        "--only",
        default="",
        help="comma-separated case names (e.g. resolver_cold): run these alone, print them, "
        "write no report (A/B runs)",
    )
    args = ap.parse_args()
    only = {c for c in args.only.split(",") if c}
    if args.quick:
        args.contacts, args.seconds = 80, 2.0
    tmp = tempfile.mkdtemp(prefix="resolver-bench-")
    url = args.database_url or f"sqlite+aiosqlite:///{tmp}/crm.db"
    store = await SqlRecordStore.open(url, migrate=True)
    t0 = time.perf_counter()
    ids = await seed(store, args.contacts)
    print(f"seeded {len(ids)} contacts in {time.perf_counter() - t0:.1f}s ({url.split(':')[0]})")
    cache = StepCache()
    resolver = Resolver(store, cache)
    one_by_one = Resolver(OneByOne(store), cache)
    # The service's embedded-mode wiring (see datasource_resolver.main).
    records = RecordCache()
    steps = StepCache(records=records)
    service = Resolver(CachedReads(steps.invalidating(store), records), steps)
    # Sanity: the resolver and the peer agree on every contact's values.
    for rid in ids[:20]:
        ours = (await resolver.resolve(_req(rid, "check"))).values
        theirs = await direct(store, rid)
        assert ours == theirs, (ours, theirs)
    run = uuid.uuid4().hex[:6]
    phase = [0]  # bumped per measurement, so "new step" keys are never reused across runs
    results: dict[str, Any] = {}
    companies: dict[str, str] = {}
    for rid in ids:
        [a] = await store.list_associations(TENANT, "contact", rid, "company", label="primary")
        companies[rid] = a.to_record_id

    async def cold(i: int) -> Any:
        return await resolver.resolve(_req(ids[i % len(ids)], f"{run}-{phase[0]}-c{i}"))

    async def cold_one_by_one(i: int) -> Any:
        return await one_by_one.resolve(_req(ids[i % len(ids)], f"{run}-{phase[0]}-o{i}"))

    async def new_step(i: int) -> Any:
        return await service.resolve(_req(ids[i % len(ids)], f"{run}-{phase[0]}-n{i}"))

    warm_keys = [f"{run}-w{j}" for j in range(len(ids))]

    async def warm(i: int) -> Any:
        j = i % len(ids)
        return await service.resolve(_req(ids[j], warm_keys[j]))

    def changed(i: int) -> None:
        if i % 4 == 0:  # the record and its company changed before the enrollment's 1st action
            rid = ids[(i // 4) % len(ids)]
            steps.invalidate(TENANT, "contact", [rid])
            steps.invalidate(TENANT, "company", [companies[rid]])

    async def enrollment(i: int) -> Any:
        return await service.resolve(_req(ids[(i // 4) % len(ids)], f"{run}-{phase[0]}-e{i}"))

    async def peer(i: int) -> Any:
        return await direct(store, ids[i % len(ids)])

    cases: list[tuple[str, Callable[[int], Awaitable[Any]], Callable[[int], Any] | None]] = [
        ("resolver_cold", cold, None),
        ("resolver_cold_one_by_one", cold_one_by_one, None),
        ("resolver_new_step", new_step, None),
        ("resolver_warm", warm, None),
        ("resolver_enrollment", enrollment, changed),
        ("direct_store", peer, None),
    ]
    for name, op, before in cases:
        if only and name not in only:
            continue
        cache.clear()
        steps.clear()
        if name in ("resolver_new_step", "resolver_warm", "resolver_enrollment"):
            for j, rid in enumerate(ids):  # an earlier step read these records
                await service.resolve(_req(rid, warm_keys[j]))
        phase[0] += 1
        results[name] = await measure(name, op, args.seconds, args.concurrency, before)
        phase[0] += 1
        # Service time alone: one resolution in flight (no event-loop queueing in the figure).
        solo = await measure(name + " (1 in flight)", op, args.seconds / 2, 1, before)
        results[name]["p50_ms_1_in_flight"] = solo["p50_ms"]
        results[name]["p99_ms_1_in_flight"] = solo["p99_ms"]
        results[name]["cpu_us_per_op_1_in_flight"] = solo["cpu_us_per_op"]

    if only:
        await store.close()
        return

    async def store_get(i: int) -> Any:
        return await store.get(TENANT, "contact", ids[i % len(ids)])

    # One store read, for scale: a cold resolution made 11 of these one by one (get, 3 x
    # association list + batch get, 2 searches); resolver_cold makes one resolve_sources call.
    results["store_single_read"] = await measure(
        "store_single_read", store_get, args.seconds / 2, args.concurrency
    )
    results.update(bench_render(min(args.seconds, 3.0)))
    await store.close()

    def ratio(a: str, b: str) -> float:
        return round(results[a]["per_s"] / results[b]["per_s"], 2)

    report = {
        "benchmark": "resolver",
        "what": "ResolveInputs for an action with 5 data sources on the embedded CRM store",
        "store": url.split(":")[0],
        "contacts": len(ids),
        "concurrency": args.concurrency,
        "seconds_per_case": args.seconds,
        "goal": {"per_s": 5000, "p99_ms": 5.0},
        "results": results,
        "ratios": {
            "resolver_cold_vs_direct_store": ratio("resolver_cold", "direct_store"),
            "resolver_cold_vs_one_by_one": ratio("resolver_cold", "resolver_cold_one_by_one"),
            "resolver_new_step_vs_direct_store": ratio("resolver_new_step", "direct_store"),
            "resolver_warm_vs_direct_store": ratio("resolver_warm", "direct_store"),
            "resolver_enrollment_vs_direct_store": ratio("resolver_enrollment", "direct_store"),
            "render_ours_vs_jinja2_sandbox": ratio("render_ours", "render_jinja2_sandbox"),
        },
        "goal_met": {
            case: results[case]["per_s"] >= 5000 and results[case]["p99_ms_1_in_flight"] < 5.0
            for case in (
                "resolver_cold",
                "resolver_new_step",
                "resolver_warm",
                "resolver_enrollment",
            )
        },
        "python": sys.version.split()[0],
        "machine": platform.machine(),
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["ratios"], indent=2))
    print(f"wrote {REPORT}")


if __name__ == "__main__":
    asyncio.run(main())

"""CRM store benchmark: record reads/s and filtered searches/s on 100k contacts (embedded SQLite).

Loads N contacts (default 100 000, deterministic) through ``SqlRecordStore.batch_create`` into a
SQLite file, then measures, each for a fixed time, single-connection and sequential (latency
bound, what one workflow step sees):

* ``get``            - ``store.get`` of a random contact
* ``batch_get_100``  - ``store.batch_get`` of 100 random contacts (records/s reported too)
* ``search_*``       - ``store.search`` (first page of 20 + total count) for several filters

Peers, side by side on the same file and the same look-ups:

* ``sqlite3_pk``          - plain ``sqlite3``: ``SELECT properties ... WHERE pk`` + ``json.loads``
* ``sqlite3_value_index`` - plain ``sqlite3``, hand-written SQL over our typed value index (the
  floor for our design: what the store's layers - SQLAlchemy, the thread hop (the store's SQLite
  reader for get / batch_get, aiosqlite for searches), validation, pydantic - cost on top)
* ``sqlite3_json_extract`` - plain ``sqlite3`` over the record table's JSON with
  ``json_extract`` (the design without the value index: a full scan per search)

Writes bench/reports/records.json. Runs in about a minute or two:

    python bench/records_bench.py [--contacts 100000] [--seconds 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from crmflow.model.criteria import FilterGroup
from crmflow.records.sql import SqlRecordStore

REPORT = Path(__file__).resolve().parent / "reports" / "records.json"
TENANT = "bench"
STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
CITIES = ("Copenhagen", "Aarhus", "Odense", "Aalborg", "Stockholm", "Oslo", "Berlin", "London")

# name -> (FilterGroup, hand-written SQL over the value index, json_extract SQL, params)
SEARCHES: dict[str, tuple[dict[str, Any], str, str, list[Any]]] = {
    "search_enum_eq": (
        {"filters": [{"property": "lifecyclestage", "operator": "eq", "value": "customer"}]},
        "v.property='lifecyclestage' AND v.value_text=?",
        "json_extract(r.properties,'$.lifecyclestage')=?",
        ["customer"],
    ),
    "search_number_range": (
        {"filters": [{"property": "num_employees", "operator": "between", "values": [1000, 1100]}]},
        "v.property='num_employees' AND v.value_num BETWEEN ? AND ?",
        "json_extract(r.properties,'$.num_employees') BETWEEN ? AND ?",
        [1000, 1100],
    ),
    "search_email_exact": (
        {"filters": [{"property": "email", "operator": "eq", "value": "user4242@example.com"}]},
        "v.property='email' AND v.value_text=?",
        "lower(json_extract(r.properties,'$.email'))=?",
        ["user4242@example.com"],
    ),
    "search_and_two_filters": (
        {
            "filters": [
                {"property": "lifecyclestage", "operator": "eq", "value": "lead"},
                {"property": "city", "operator": "eq", "value": "aarhus"},
            ]
        },
        "v.property='lifecyclestage' AND v.value_text=? AND EXISTS (SELECT 1 FROM crm_value w "
        "WHERE w.tenant_id=v.tenant_id AND w.object_type=v.object_type AND "
        "w.record_id=v.record_id AND w.property='city' AND w.value_text=?)",
        "json_extract(r.properties,'$.lifecyclestage')=? AND "
        "lower(json_extract(r.properties,'$.city'))=?",
        ["lead", "aarhus"],
    ),
}


def contact(i: int, rnd: random.Random) -> dict[str, Any]:
    return {
        "email": f"user{i}@example.com",
        "firstname": f"First{i % 997}",
        "lastname": f"Last{i % 1013}",
        "lifecyclestage": rnd.choice(STAGES),
        "city": rnd.choice(CITIES),
        "num_employees": rnd.randrange(1, 10_000),
        "hs_lead_status": rnd.choice(("NEW", "OPEN", "IN_PROGRESS")),
    }


async def timed(seconds: float, op: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    lat: list[float] = []
    end = time.perf_counter() + seconds
    while (t0 := time.perf_counter()) < end:
        await op()
        lat.append(time.perf_counter() - t0)
    lat.sort()
    return {
        "ops": len(lat),
        "ops_per_s": round(len(lat) / sum(lat), 1),
        "p50_ms": round(lat[len(lat) // 2] * 1000, 3),
        "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 3),
    }


def _sync(seconds: float, op: Callable[[], Any]) -> dict[str, float]:
    lat: list[float] = []
    end = time.perf_counter() + seconds
    while (t0 := time.perf_counter()) < end:
        op()
        lat.append(time.perf_counter() - t0)
    lat.sort()
    return {
        "ops": len(lat),
        "ops_per_s": round(len(lat) / sum(lat), 1),
        "p50_ms": round(lat[len(lat) // 2] * 1000, 3),
        "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 3),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    db = tmp / "crm.db"
    store = await SqlRecordStore.open(f"sqlite+aiosqlite:///{db}")
    rnd = random.Random(42)
    t0 = time.perf_counter()
    ids: list[str] = []
    for start in range(0, args.contacts, 1000):
        n = min(1000, args.contacts - start)
        made = await store.batch_create(
            TENANT, "contact", [contact(start + i, rnd) for i in range(n)]
        )
        ids += [r.record_id for r in made]
    load_s = time.perf_counter() - t0
    print(
        f"loaded {len(ids)} contacts in {load_s:.1f}s ({len(ids) / load_s:.0f} records/s)",
        file=sys.stderr,
    )
    results: dict[str, Any] = {
        "load": {
            "records": len(ids),
            "seconds": round(load_s, 1),
            "records_per_s": round(len(ids) / load_s),
        }
    }
    peer = sqlite3.connect(db)
    s = args.seconds

    # Reads ----------------------------------------------------------------------------------
    results["get"] = await timed(s, lambda: store.get(TENANT, "contact", rnd.choice(ids)))

    def pk_read() -> Any:
        row = peer.execute(
            "SELECT properties FROM crm_record WHERE tenant_id=? AND object_type=? AND record_id=?",
            (TENANT, "contact", rnd.choice(ids)),
        ).fetchone()
        return json.loads(row[0])

    results["sqlite3_pk"] = _sync(s, pk_read)
    results["batch_get_100"] = await timed(
        s, lambda: store.batch_get(TENANT, "contact", rnd.sample(ids, 100))
    )
    results["batch_get_100"]["records_per_s"] = round(results["batch_get_100"]["ops_per_s"] * 100)

    # Searches -------------------------------------------------------------------------------
    for name, (group, value_sql, json_sql, params) in SEARCHES.items():
        fg = FilterGroup.model_validate(group)
        page = await store.search(TENANT, "contact", fg, limit=20)

        def search(fg: FilterGroup = fg) -> Awaitable[Any]:
            return store.search(TENANT, "contact", fg, limit=20)

        ours = await timed(s, search)
        ours["total"] = page.total  # type: ignore[assignment]
        base = "FROM crm_value v WHERE v.tenant_id=? AND v.object_type='contact' AND " + value_sql

        def by_index(base: str = base, params: list[Any] = params) -> Any:
            rows = peer.execute(
                "SELECT r.properties FROM crm_record r WHERE r.tenant_id=? AND "
                "r.object_type='contact' AND r.record_id IN (SELECT v.record_id " + base + ") "
                "ORDER BY r.created_at, r.record_id LIMIT 20",
                [TENANT, TENANT, *params],
            ).fetchall()
            total = peer.execute(
                "SELECT count(DISTINCT v.record_id) " + base, [TENANT, *params]
            ).fetchone()[0]
            return [json.loads(r[0]) for r in rows], total

        def by_json(json_sql: str = json_sql, params: list[Any] = params) -> Any:
            where = (
                "FROM crm_record r WHERE r.tenant_id=? AND r.object_type='contact' AND " + json_sql
            )
            rows = peer.execute(
                "SELECT r.properties " + where + " ORDER BY r.created_at, r.record_id LIMIT 20",
                [TENANT, *params],
            ).fetchall()
            total = peer.execute("SELECT count(*) " + where, [TENANT, *params]).fetchone()[0]
            return [json.loads(r[0]) for r in rows], total

        idx_rows, idx_total = by_index()
        json_rows, json_total = by_json()
        assert idx_total == page.total == json_total, (name, idx_total, page.total, json_total)
        emails = [r.properties["email"] for r in page.records]
        assert emails == [p["email"] for p in idx_rows] == [p["email"] for p in json_rows], name
        results[name] = {
            "ours": ours,
            "sqlite3_value_index": _sync(s, by_index),
            "sqlite3_json_extract": _sync(min(s, 2.0), by_json),
        }
        r = results[name]
        r["ratio_ours_vs_value_index"] = round(
            ours["ops_per_s"] / r["sqlite3_value_index"]["ops_per_s"], 3
        )
        r["ratio_ours_vs_json_extract"] = round(
            ours["ops_per_s"] / r["sqlite3_json_extract"]["ops_per_s"], 2
        )
        print(
            f"{name}: ours {ours['ops_per_s']}/s (total {page.total}), value-index peer "
            f"{r['sqlite3_value_index']['ops_per_s']}/s, json_extract peer "
            f"{r['sqlite3_json_extract']['ops_per_s']}/s",
            file=sys.stderr,
        )
    results["ratio_get_vs_sqlite3_pk"] = round(
        results["get"]["ops_per_s"] / results["sqlite3_pk"]["ops_per_s"], 3
    )
    peer.close()
    await store.close()
    return {
        "benchmark": "records",
        "contacts": len(ids),
        "seconds_per_measure": s,
        "backend": "embedded SQLite (WAL), SqlRecordStore (get/batch_get on its own sqlite3 "
        "reader thread, searches over aiosqlite); peers: stdlib sqlite3",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "sqlite": sqlite3.sqlite_version,
        "results": results,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contacts", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--quick", action="store_true", help="10k contacts, 1s per measure")
    a = ap.parse_args()
    if a.quick:
        a.contacts, a.seconds = 10_000, 1.0
    report = asyncio.run(main(a))
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report["results"].items()}, indent=1))
    print(f"wrote {REPORT}", file=sys.stderr)

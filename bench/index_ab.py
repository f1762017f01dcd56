"""A/B the enrollment trigger index of this checkout against another git revision, interleaved.

The machines are shared: two benchmark runs a few minutes apart differ by up to +-25% on the
same code, which hides any change smaller than that. This script loads both versions of
``crmflow/criteria/index.py`` and ``enrollment/trigger_index.py`` into one process, builds both
indexes on the same workflows (enrollment_bench's generator), checks that they return the same
matches, then times them on alternating chunks of the same events (CPU time, the order swapped
every round), so drift hits both alike.

    python bench/index_ab.py REV [--workflows 1000 10000] [--segmented] [--rounds 4]

Prints per-event microseconds of both and the ratio (>1: this checkout is faster). Not part of
``make bench``: a tool for judging an index change before claiming it. "This checkout" is the
installed build (normally the mypyc extension, setup.py); the other side always runs as Python
source, so ``REV`` ``.`` (this checkout's own source) measures what the compilation gives, and
``CRMFLOW_PURE_PYTHON=1 make install`` (no extension) compares source with source.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import enrollment_bench as bench  # noqa: E402
import pure_index  # noqa: E402


def other_trigger_index(rev: str) -> Any:
    """``TriggerIndex`` of ``rev`` (``.``: this checkout's source), run as Python source."""
    return pure_index.trigger_index_class(None if rev == "." else rev, tag="ab")


def _key(matches: list[Any]) -> list[tuple[str, str, int, str]]:
    return sorted((m.workflow.workflow_id, m.role, m.index, m.kind) for m in matches)


def compare(n: int, other: Any, *, segmented: bool, rounds: int) -> dict[str, Any]:
    evs = bench.events(3000)
    cws = [bench.compile_revision(r) for r in bench.workflows(n, segmented=segmented)]
    here, there = bench.TriggerIndex(), other()
    for cw in cws:
        here.put(cw)
        there.put(cw)
    rng = random.Random(3)
    enrolled = {ev.event_id: {f"wf-{rng.randrange(n)}" for _ in range(3)} for ev, _ in evs}
    for ev, snap in evs[:300]:
        a = _key(here.match(ev, snap, bench.NOW, enrolled[ev.event_id]))
        b = _key(there.match(ev, snap, bench.NOW, enrolled[ev.event_id]))
        if a != b:
            raise SystemExit(f"the two indexes disagree on {ev.event_id}: {set(a) ^ set(b)}")
    cost = {"here": 0.0, "there": 0.0}
    chunks = [evs[i : i + 100] for i in range(0, len(evs), 100)]
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            order = [("here", here), ("there", there)]
            for chunk in chunks:
                for name, idx in order if r % 2 == 0 else order[::-1]:
                    t0 = time.process_time()
                    for ev, snap in chunk:
                        idx.match(ev, snap, bench.NOW, enrolled[ev.event_id])
                    cost[name] += time.process_time() - t0
    finally:
        gc.enable()
    k = rounds * len(evs)
    return {
        "workflows": n,
        "workload": "segmented" if segmented else "hot",
        "here_us_per_event": round(cost["here"] / k * 1e6, 1),
        "other_us_per_event": round(cost["there"] / k * 1e6, 1),
        "other_over_here": round(cost["there"] / cost["here"], 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("rev", help="git revision to compare this checkout against")
    ap.add_argument("--workflows", type=int, nargs="+", default=[1_000, 10_000])
    ap.add_argument("--segmented", action="store_true")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    other = other_trigger_index(args.rev)
    for n in args.workflows:
        print(compare(n, other, segmented=args.segmented, rounds=args.rounds), flush=True)


if __name__ == "__main__":
    main()

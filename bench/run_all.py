"""`make bench`: run every benchmark under bench/ and write one report.

Each benchmark is a script `bench/*_bench.py` that runs its subject and a peer side by side in
the same run (these machines are shared and noisy, so only ratios measured together mean much)
and writes `bench/reports/<name>.json`. This runner runs them one after another, then writes
`bench/reports/report.md` with the machine it ran on and every figure.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPORTS = HERE / "reports"


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _rows(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Flatten a benchmark's JSON into (key, value) rows for the report."""
    out: list[tuple[str, str]] = []
    if isinstance(data, dict):
        for k, v in data.items():
            out += _rows(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        for i, v in enumerate(data):
            label = v.get("name") or v.get("case") or str(i)
            out += _rows(v, f"{prefix}[{label}]")
    else:
        if isinstance(data, float):
            data = f"{data:,.3f}" if abs(data) < 1000 else f"{data:,.0f}"
        out.append((prefix, str(data)))
    return out


def main(argv: list[str]) -> int:
    REPORTS.mkdir(exist_ok=True)
    only = set(argv)
    benches = sorted(p for p in HERE.glob("*_bench.py") if not only or p.stem in only)
    failed = []
    for script in benches:
        print(f"== {script.stem}", flush=True)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(script)], cwd=HERE.parent)
        print(f"   {script.stem}: exit {proc.returncode} in {time.monotonic() - started:.0f}s")
        if proc.returncode:
            failed.append(script.stem)
    lines = ["# crmflow benchmark report", "", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in machine().items()]
    for script in benches:
        name = script.stem.removesuffix("_bench")
        path = REPORTS / f"{name}.json"
        lines += ["", f"## {name}", ""]
        if not path.exists():
            lines.append(
                f"(no report: {script.name} failed)" if script.stem in failed else "(no report)"
            )
            continue
        lines += ["| figure | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in _rows(json.loads(path.read_text()))]
    (REPORTS / "report.md").write_text("\n".join(lines) + "\n")
    print(f"report: {REPORTS / 'report.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Regenerate the checked-in Python for proto/ (``make proto``), or check it is fresh (``--check``).

Output goes under src/ at the path of the proto package (crmflow.api.<area>.v1), so generated
imports work without rewriting. mypy-protobuf writes the .pyi stubs.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
OUT_PKG = Path("crmflow") / "api"


def generate(out_root: Path) -> None:
    files = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    plugin_dir = Path(sys.executable).parent
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--plugin=protoc-gen-mypy={plugin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugin_dir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *files,
    ]
    # mypy-protobuf reports every file it writes; show protoc's output only when it fails.
    proc = subprocess.run(cmd, cwd=PROTO, capture_output=True, text=True)
    if proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"protoc failed with exit code {proc.returncode}")
    # Packages need __init__.py so setuptools ships them.
    for d in (out_root / OUT_PKG).rglob("*"):
        if d.is_dir():
            (d / "__init__.py").touch()
    (out_root / OUT_PKG / "__init__.py").write_text(
        '"""Generated from proto/ by scripts/gen_proto.py. Do not edit."""\n'
    )


def main() -> int:
    check = "--check" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / OUT_PKG
        current = ROOT / "src" / OUT_PKG
        if check:
            diff = _diff(fresh, current)
            if diff:
                print("generated code is stale; run `make proto`:", *diff, sep="\n  ")
                return 1
            print("generated code is up to date")
            return 0
        if current.exists():
            shutil.rmtree(current)
        shutil.copytree(fresh, current)
    print(f"generated {sum(1 for _ in current.rglob('*.py'))} modules under src/{OUT_PKG}")
    return 0


def _diff(a: Path, b: Path) -> list[str]:
    out = []
    names_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    names_b = {
        p.relative_to(b) for p in b.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }
    for n in sorted(names_a ^ names_b):
        out.append(f"{n} (only in {'fresh' if n in names_a else 'checked-in'})")
    for n in sorted(names_a & names_b):
        if not filecmp.cmp(a / n, b / n, shallow=False):
            out.append(str(n))
    return out


if __name__ == "__main__":
    os.chdir(ROOT)
    raise SystemExit(main())

"""Run `crmflow up` as a real process tree for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from crmflow.settings import DEFAULT_PORTS, address_env
from tests.helpers import free_port


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc), to prove nothing is left behind."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parts = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(parts[1]), []).append(int(stat.parent.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Stack:
    data_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    temporal_port: int = 0
    ui_port: int = 0
    proc: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)

    def args(self) -> list[str]:
        out = [
            sys.executable,
            "-m",
            "crmflow.cli.main",
            "up",
            "--data-dir",
            str(self.data_dir),
            "--temporal-port",
            str(self.temporal_port),
            "--ui-port",
            str(self.ui_port),
        ]
        for name, port in self.ports.items():
            out += [f"--{name}-port", str(port)]
        return out

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "CRMFLOW_DATA_DIR": str(self.data_dir),
                "TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
                **address_env("127.0.0.1", self.ports),
                "CRMFLOW_TEMPORAL_UI_URL": f"http://127.0.0.1:{self.ui_port}",
            }
        )
        return env

    def start(self, timeout: float = 120) -> None:
        self.proc = subprocess.Popen(
            self.args(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env(),
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line.rstrip())
            if line.startswith("Try `crmflow demo`"):
                return
        logs = "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
            for p in sorted((self.data_dir / "logs").glob("*.log"))
        )
        raise AssertionError("crmflow up did not come up:\n" + "\n".join(self.output) + logs)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self.output += out.splitlines()
        return self.proc.returncode


def new_stack(tmp: Path) -> Stack:
    return Stack(
        data_dir=tmp,
        ports={name: free_port() for name in DEFAULT_PORTS},
        temporal_port=free_port(),
        ui_port=free_port(),
    )

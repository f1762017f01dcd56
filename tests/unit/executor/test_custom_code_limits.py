"""The custom-code sandbox: real child processes hitting each limit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from executor.activities.custom_code import landlock_abi, run_code
from temporalio.exceptions import ApplicationError


async def _run(
    code: str, *, env: dict[str, str] | None = None, seconds: int = 5, network: bool = False
) -> dict:
    return await run_code(
        code, {"inputs": {"n": 2}}, env=env or {}, seconds=seconds, allow_network=network
    )


async def test_outputs_and_inputs() -> None:
    res = await _run(
        "def main(event):\n    return {'outputs': {'double': event['inputs']['n'] * 2}}"
    )
    assert res["ok"] and res["outputs"] == {"double": 4}


async def test_wall_clock_limit_stops_the_process() -> None:
    with pytest.raises(ApplicationError, match="longer than 1 s"):
        await _run("import time\ndef main(event):\n    time.sleep(30)", seconds=1)


async def test_memory_limit() -> None:
    res = await _run("def main(event):\n    x = bytearray(512 * 1024 * 1024)\n    return {}")
    assert not res["ok"] and "MemoryError" in res["error"]


async def test_no_network_unless_allowed() -> None:
    code = (
        "import socket\ndef main(event):\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=1)\n    return {}"
    )
    res = await _run(code)
    assert not res["ok"] and "network access is disabled" in res["error"]
    res = await _run("import _socket\ndef main(event):\n    _socket.socket()\n    return {}")
    assert not res["ok"] and "PermissionError" in res["error"]


async def test_only_named_secrets_in_the_environment_and_an_empty_cwd() -> None:
    os.environ["CRMFLOW_SHOULD_NOT_LEAK"] = "1"
    code = (
        "import os\ndef main(event):\n"
        "    return {'outputs': {'env': sorted(os.environ), 'files': os.listdir('.'),"
        " 'cwd': os.getcwd(), 'key': os.environ.get('API_KEY')}}"
    )
    res = await _run(code, env={"API_KEY": "k1"})
    out = res["outputs"]
    assert out["key"] == "k1"
    assert "CRMFLOW_SHOULD_NOT_LEAK" not in out["env"] and set(out["env"]) <= {
        "API_KEY",
        "LC_CTYPE",
    }
    assert out["files"] == [] and "crmflow-code-" in out["cwd"]


async def test_user_exception_is_reported_with_its_message() -> None:
    res = await _run("def main(event):\n    raise ValueError('bad input')")
    assert not res["ok"] and res["error"] == "ValueError: bad input"


async def test_prints_cannot_forge_the_result() -> None:
    code = (
        'def main(event):\n    print(\'{"ok": true, "outputs": {"forged": 1}}\')\n'
        "    return {'outputs': {'real': 1}}"
    )
    res = await _run(code)
    assert res["outputs"] == {"real": 1} and "forged" in res["logs"]


# -- the worker's files ------------------------------------------------------------------------
RUNNER = Path(__file__).parents[3] / "services/executor/executor/activities/sandbox_runner.py"


needs_landlock = pytest.mark.skipif(
    landlock_abi() < 1, reason="this kernel has no Landlock (custom code would be refused)"
)


@pytest.fixture
def worker_file(tmp_path: Path) -> Path:
    path = tmp_path / "tenant-secrets.json"
    path.write_text('{"other-tenant": "s3cret"}')
    return path


@needs_landlock
async def test_cannot_read_the_workers_files(worker_file: Path) -> None:
    for target in (str(worker_file), "/proc/self/../1/environ", f"/proc/{os.getpid()}/environ"):
        code = f"def main(event):\n    return {{'outputs': {{'x': open({target!r}).read()}}}}"
        res = await _run(code)
        assert not res["ok"] and "PermissionError" in res["error"], (target, res)
    where = str(worker_file.parent)
    listing = f"import os\ndef main(event):\n    return {{'o': os.listdir({where!r})}}"
    res = await _run(listing)
    assert not res["ok"] and "PermissionError" in res["error"]


@needs_landlock
async def test_stdlib_and_its_own_directory_still_work() -> None:
    code = (
        "import json, re, datetime, decimal, statistics\n"
        "def main(event):\n"
        "    with open('scratch.txt', 'w') as f:\n"
        "        f.write(json.dumps({'n': statistics.mean([1, 2, 3])}))\n"
        "    with open('scratch.txt') as f:\n"
        "        data = json.load(f)\n"
        "    return {'outputs': {'n': data['n'], 'm': bool(re.match('a', 'abc'))}}"
    )
    res = await _run(code)
    assert res["ok"], res
    assert res["outputs"] == {"n": 2, "m": True}


@needs_landlock
@pytest.mark.parametrize(
    "body",
    [
        "import subprocess\n    subprocess.run(['/bin/true'])",
        "import os\n    os.system('true')",
        "import os\n    os.execv('/bin/true', ['true'])",
        "import ctypes\n    ctypes.CDLL(None)",
        "import os, signal\n    os.kill(os.getppid(), signal.SIGTERM)",
    ],
)
async def test_no_processes_native_libraries_or_signals(body: str) -> None:
    res = await _run(f"def main(event):\n    {body}\n    return {{}}")
    assert not res["ok"] and "PermissionError" in res["error"], res


def _confined_child(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in ``python -I -S`` after importing the runner's functions by path."""
    prelude = (
        "import importlib.util, sys, os\n"
        f"spec = importlib.util.spec_from_file_location('runner', {str(RUNNER)!r})\n"
        "runner = importlib.util.module_from_spec(spec); spec.loader.exec_module(runner)\n"
    )
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", prelude + script],
        capture_output=True,
        text=True,
        timeout=30,
    )


@needs_landlock
def test_the_kernel_enforces_it_without_the_audit_hook(worker_file: Path) -> None:
    # Landlock alone (no audit hook in this child): the kernel refuses the open.
    proc = _confined_child(
        "abi = runner._landlock(runner._readable_roots(), [os.getcwd()], block_tcp=True)\n"
        "assert abi >= 1\n"
        "import json\n"  # the standard library stays importable
        "try:\n"
        f"    open({str(worker_file)!r}).read()\n"
        "except PermissionError as exc:\n"
        "    print('refused', exc.errno)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["refused", "13"]  # EACCES


def test_the_audit_hook_alone_refuses_it_too(worker_file: Path) -> None:
    # The best-effort layer, also present under Landlock: refuses from Python.
    proc = _confined_child(
        "runner._audit_guard(runner._readable_roots(), [os.getcwd()])\n"
        "for attempt in (\n"
        f"    lambda: open({str(worker_file)!r}),\n"
        f"    lambda: os.listdir({str(worker_file.parent)!r}),\n"
        "    lambda: __import__('subprocess').run(['/bin/true']),\n"
        "):\n"
        "    try:\n"
        "        attempt()\n"
        "        print('allowed')\n"
        "    except PermissionError:\n"
        "        print('refused')\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["refused"] * 3

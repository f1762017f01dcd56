"""The custom-code sandbox: real child processes hitting each limit."""

from __future__ import annotations

import os

import pytest
from executor.activities.custom_code import run_code
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

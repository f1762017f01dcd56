"""Custom code: user Python in a separate, limited process, on its own task queue.

Limits: wall clock (<= 20 s) and CPU time, 128 MB address space, small file sizes, no core
dumps (``resource.setrlimit`` in the child); an empty environment except the named tenant
secrets; a fresh temporary working directory; ``python -I -S`` (no site-packages, no user
paths); network blocked in the child unless the action allows it (and, when the worker may,
a new empty network namespace). The child confines itself to the standard library and its
own directory with Landlock before running user code, so it cannot read the worker's files
(databases, other tenants' secrets, /proc/<worker>/environ); without Landlock the action fails
unless ``custom_code_isolation`` is "best-effort" (see sandbox_runner.py). Outputs are checked
against their declared types.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import resource
import sys
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

from temporalio.exceptions import ApplicationError

from crmflow.actions import custom_code as spec
from crmflow.actions.custom_code import CodeOutput, CustomCodeFields, OutputType
from executor.activities.base import ActionContext, handles

RUNNER = Path(__file__).with_name("sandbox_runner.py")
MEMORY_BYTES = spec.MAX_MEMORY_MB * 1024 * 1024
CLONE_NEWNET = 0x40000000


def landlock_abi() -> int:
    """The Landlock ABI this kernel offers to the custom-code child (0: none). A probe only:
    the child confines itself (sandbox_runner.py)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        return max(0, int(libc.syscall(444, None, ctypes.c_size_t(0), 1)))
    except (OSError, AttributeError):
        return 0


def _limits(seconds: int, isolate_network: bool) -> Any:
    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (10 * 1024 * 1024,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        os.setsid()
        if isolate_network:  # best effort: needs CAP_SYS_ADMIN; the runner blocks sockets anyway
            with contextlib.suppress(Exception):
                ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET)

    return apply


def coerce(out: CodeOutput, value: Any) -> Any:
    if value is None:
        return None
    t = out.type
    try:
        if t == OutputType.STRING:
            return str(value)
        if t == OutputType.NUMBER:
            if isinstance(value, bool):
                raise ValueError
            return value if isinstance(value, int | float) else float(value)
        if t == OutputType.BOOL:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise ValueError
        if t == OutputType.DATE:
            return date.fromisoformat(str(value)[:10]).isoformat()
        if t == OutputType.DATETIME:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).isoformat()
        if t == OutputType.ENUMERATION:
            if out.options and str(value) not in out.options:
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        pass
    raise ApplicationError(
        f"output {out.name!r} should be a {t.value}, got {value!r}",
        type="CustomCodeError",
        non_retryable=True,
    )


async def run_code(
    code: str,
    event: dict[str, Any],
    *,
    env: dict[str, str],
    seconds: int,
    allow_network: bool,
    require_isolation: bool = True,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="crmflow-code-") as cwd:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            str(RUNNER),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=env,
            preexec_fn=_limits(seconds, not allow_network),
        )
        request = json.dumps(
            {
                "code": code,
                "event": event,
                "allow_network": allow_network,
                "require_isolation": require_isolation,
            }
        )
        try:
            stdout, stderr = await asyncio.wait_for(
                proc.communicate(request.encode()), timeout=seconds
            )
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            await proc.wait()
            raise ApplicationError(
                f"custom code ran longer than {seconds} s and was stopped",
                type="CustomCodeTimeout",
                non_retryable=True,
            ) from None
    lines = stdout.decode(errors="replace").strip().splitlines()
    if not lines:
        reason = (
            "killed (CPU or memory limit)"
            if proc.returncode and proc.returncode < 0
            else (f"exited with {proc.returncode}")
        )
        raise ApplicationError(
            f"custom code {reason}: {stderr.decode(errors='replace')[-500:]}",
            type="CustomCodeError",
            non_retryable=True,
        )
    result: dict[str, Any] = json.loads(lines[-1])
    if result.get("isolation_unavailable"):
        # A property of the worker's host, not of the code: fail the action with the reason
        # (operators see it in the run history) instead of running the code unconfined.
        raise ApplicationError(
            str(result.get("error")), type="CustomCodeIsolationUnavailable", non_retryable=True
        )
    result["logs"] = stderr.decode(errors="replace")[-2000:]
    return result


@handles(spec.CUSTOM_CODE)
async def custom_code(ctx: ActionContext, f: CustomCodeFields) -> dict[str, Any]:
    r = ctx.req
    env = await ctx.secrets.get_many(r.tenant_id, f.secrets)
    event = {
        "inputs": f.inputs,
        "object": {"object_type": r.object_type, "record_id": r.record_id},
        "workflow_id": r.workflow_id,
        "action_id": r.action_id,
    }
    result = await run_code(
        f.code,
        event,
        env=env,
        seconds=f.timeout_seconds,
        allow_network=f.allow_network,
        require_isolation=ctx.deps.settings.custom_code_isolation == "required",
    )
    if not result.get("ok"):
        raise ApplicationError(
            f"custom code failed: {result.get('error')}",
            result.get("trace", ""),
            type="CustomCodeError",
            non_retryable=True,
        )
    raw = result.get("outputs") or {}
    if not isinstance(raw, dict):
        raise ApplicationError("outputs must be a dict", type="CustomCodeError", non_retryable=True)
    if not f.outputs:
        return {k: v for k, v in raw.items() if isinstance(v, str | int | float | bool)}
    return {o.name: coerce(o, raw.get(o.name)) for o in f.outputs}

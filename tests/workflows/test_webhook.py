"""Webhooks against a real local HTTP server: retry rules, auth, outputs, SSRF guard.

On the time-skipping server, so the documented backoff (1 minute first) passes instantly;
the workflow clock shows it was respected.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from executor.history import utc
from executor.secrets import FileSecrets
from temporalio.testing import WorkflowEnvironment

from tests.workflows.harness import act, definition, enrollment, make_settings, running_worker


class Hook:
    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hook = self

        class H(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                hook.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": self.rfile.read(length),
                    }
                )
                code, headers, body = hook.script.pop(0) if hook.script else (200, {}, {"ok": 1})
                data = json.dumps(body).encode()
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _reply

            def log_message(self, *args: Any) -> None:
                pass

        return H


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    t = threading.Thread(target=h.server.serve_forever, daemon=True)
    t.start()
    try:
        yield h
    finally:
        h.server.shutdown()
        h.server.server_close()


async def _run(
    env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    tenant_id: str,
    fields: dict[str, Any],
    *,
    allow: bool = True,
) -> tuple[Any, Any]:
    settings = make_settings(tmp_path, task_queue)
    if not allow:
        settings.webhook_allow_private = []
    FileSecrets(settings.data_dir / "secrets").put(tenant_id, "hook_key", "s3cret")
    actions = [
        act("hook", "send_webhook", "after", **fields),
        act("after", "set_property", property="plan", value="{{ actions.hook.outputs.data.plan }}"),
    ]
    async with running_worker(
        env.client, tmp_path, task_queue, settings=settings, search_attributes=False
    ) as h:
        h.store.put(tenant_id, "contact", "c1", email="ada@example.com")
        start = await env.get_current_time()
        handle = await h.start(enrollment(tenant_id, "c1", definition(actions)))
        assert (await handle.result()).status == "completed"
        [row, *_] = await h.history.timeline(tenant_id=tenant_id, run_workflow_id=handle.id)
        props = (await h.store.get(tenant_id, "contact", "c1")).properties
        return row, (start, props, handle)


async def test_5xx_retried_with_documented_backoff_then_outputs_and_signature(
    time_skipping_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    tenant_id: str,
    hook: Hook,
) -> None:
    hook.script = [(503, {}, {}), (500, {}, {}), (200, {}, {"data": {"plan": "pro"}, "id": 7})]
    row, (start, props, _) = await _run(
        time_skipping_env,
        tmp_path,
        task_queue,
        tenant_id,
        {
            "url": hook.url,
            "auth": "signature",
            "secret_name": "hook_key",
            "response_fields": ["data.plan", "id"],
        },
    )
    assert row.status == "succeeded" and row.attempts == 3
    assert row.outputs["data"]["plan"] == "pro" and row.outputs["id"] == 7
    assert props["plan"] == "pro"  # a later action used the selected response field
    # 1 minute, then 2 minutes between the attempts (workflow clock).
    assert utc(row.finished_at) - start >= timedelta(minutes=3)  # type: ignore[operator]
    keys = {r["headers"]["Idempotency-Key"] for r in hook.requests}
    assert len(hook.requests) == 3 and len(keys) == 1
    last = hook.requests[-1]
    ts = last["headers"]["X-Crmflow-Request-Timestamp"]
    expected = hmac.new(b"s3cret", ts.encode() + b"." + last["body"], hashlib.sha256).hexdigest()
    assert last["headers"]["X-Crmflow-Signature-v1"] == expected
    assert json.loads(last["body"])["properties"]["email"] == "ada@example.com"


async def test_4xx_is_not_retried(
    time_skipping_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    tenant_id: str,
    hook: Hook,
) -> None:
    hook.script = [(404, {}, {"error": "no such hook"})]
    row, _ = await _run(
        time_skipping_env,
        tmp_path,
        task_queue,
        tenant_id,
        {
            "url": hook.url,
            "method": "GET",
            "auth": "api_key",
            "secret_name": "hook_key",
            "api_key_in": "query",
            "api_key_name": "key",
        },
    )
    assert row.status == "failed" and row.attempts == 1 and "404" in row.reason
    assert len(hook.requests) == 1 and hook.requests[0]["path"] == "/hook?key=s3cret"


async def test_429_honours_retry_after(
    time_skipping_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    tenant_id: str,
    hook: Hook,
) -> None:
    hook.script = [(429, {"Retry-After": "600"}, {}), (200, {}, {})]
    row, (start, _, _) = await _run(
        time_skipping_env,
        tmp_path,
        task_queue,
        tenant_id,
        {"url": hook.url, "auth": "api_key", "secret_name": "hook_key"},
    )
    assert row.status == "succeeded" and row.attempts == 2
    assert utc(row.finished_at) - start >= timedelta(minutes=10)  # type: ignore[operator]
    assert hook.requests[0]["headers"]["X-API-Key"] == "s3cret"


async def test_private_addresses_are_refused_unless_allowed(
    time_skipping_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    tenant_id: str,
    hook: Hook,
) -> None:
    row, _ = await _run(
        time_skipping_env, tmp_path, task_queue, tenant_id, {"url": hook.url}, allow=False
    )
    assert row.status == "failed" and "private or internal" in row.reason
    assert hook.requests == []


def test_metadata_address_is_always_refused() -> None:
    from executor.activities.webhook import check_destination
    from temporalio.exceptions import ApplicationError

    with pytest.raises(ApplicationError, match="metadata") as err:
        check_destination("http://169.254.169.254/latest/meta-data")
    assert err.value.non_retryable and err.value.type == "AddressRefused"

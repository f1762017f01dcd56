"""Send a webhook: SSRF guard, API key or HMAC signature, HubSpot's retry rules.

Retry rules live in the activity's retry policy (executor.dispatch.WEBHOOK_RETRY: 1 minute
first, at most 8 hours apart, up to 3 days); this module decides what is retryable: 4xx is
final except 429, whose Retry-After sets the next attempt; 5xx and timeouts are retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from crmflow.actions import webhook as spec
from crmflow.actions.webhook import WebhookAuth, WebhookFields
from executor.activities.base import ActionContext, handles
from executor.activities.destination_guard import (
    AddressRefused,
    check_url,
    guarded_client,
)

CONNECT_TIMEOUT = 3.0
RESPONSE_TIMEOUT = 30.0
MAX_RETRY_AFTER = timedelta(hours=8)


def _refused(exc: AddressRefused) -> ApplicationError:
    return ApplicationError(str(exc), type="AddressRefused", non_retryable=True)


def check_destination(url: str) -> None:
    """Refuse what needs no lookup (scheme, metadata host names) before building the request;
    resolved addresses are checked when the connection is opened (destination_guard)."""
    try:
        check_url(url)
    except AddressRefused as exc:
        raise _refused(exc) from None


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>", hex (receivers recompute and compare)."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _retry_after(value: str | None) -> timedelta | None:
    if not value:
        return None
    try:
        delay = timedelta(seconds=max(0.0, float(value)))
    except ValueError:
        try:
            delay = parsedate_to_datetime(value) - parsedate_to_datetime(
                time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
            )
        except (TypeError, ValueError):
            return None
    return min(max(delay, timedelta(seconds=1)), MAX_RETRY_AFTER)


def _pick(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _client(ctx: ActionContext) -> httpx.AsyncClient:
    """One pooled client per worker (TLS context and connections are reused); it connects
    only to public addresses or the operator's allow-list (webhook_allow_private)."""
    client = ctx.deps.extras.get("webhook_client")
    if client is None:
        client = guarded_client(
            ctx.deps.settings.webhook_allow_private,
            timeout=httpx.Timeout(RESPONSE_TIMEOUT, connect=CONNECT_TIMEOUT),
        )
        ctx.deps.extras["webhook_client"] = client
    return client


@handles(spec.SEND_WEBHOOK)
async def send_webhook(ctx: ActionContext, f: WebhookFields) -> dict[str, Any]:
    r = ctx.req
    check_destination(f.url)
    headers = {
        "User-Agent": "crmflow-webhooks/1",
        "Idempotency-Key": r.idempotency_key,
        **f.headers,
    }
    params = dict(f.query)
    body = b""
    if f.method == "POST":
        payload = f.body
        if payload is None:  # default payload: the enrolled record
            rec = await ctx.store.get(r.tenant_id, r.object_type, r.record_id)
            payload = {
                "object_type": r.object_type,
                "record_id": r.record_id,
                "properties": rec.properties,
            }
        body = json.dumps(payload, sort_keys=True, default=str).encode()
        headers["Content-Type"] = "application/json"
    if f.auth == WebhookAuth.API_KEY:
        key = await ctx.secrets.get(r.tenant_id, f.secret_name)
        if f.api_key_in == "query":
            params[f.api_key_name] = key
        else:
            headers[f.api_key_name] = key
    elif f.auth == WebhookAuth.SIGNATURE:
        secret = await ctx.secrets.get(r.tenant_id, f.secret_name)
        ts = str(int(time.time() * 1000))
        headers["X-Crmflow-Request-Timestamp"] = ts
        headers["X-Crmflow-Signature-v1"] = sign(secret, ts, body)
    try:
        resp = await _client(ctx).request(
            f.method, f.url, params=params, headers=headers, content=body or None
        )
    except AddressRefused as exc:
        raise _refused(exc) from None
    except httpx.TimeoutException as exc:
        raise ApplicationError(
            f"webhook timed out: {type(exc).__name__}", type="WebhookTimeout"
        ) from None
    except httpx.TransportError as exc:
        raise ApplicationError(
            f"webhook connection failed: {exc}", type="WebhookUnreachable"
        ) from None
    code = resp.status_code
    if code == 429:
        raise ApplicationError(
            "webhook rate limited (429)",
            type="WebhookRateLimited",
            next_retry_delay=_retry_after(resp.headers.get("Retry-After")),
        )
    if 400 <= code < 500:
        raise ApplicationError(
            f"webhook refused with {code}: {resp.text[:200]}",
            type="WebhookClientError",
            non_retryable=True,
        )
    if code >= 500:
        raise ApplicationError(f"webhook failed with {code}", type="WebhookServerError")
    if 300 <= code < 400:
        raise ApplicationError(
            f"webhook answered a redirect ({code}); redirects are not followed",
            type="WebhookClientError",
            non_retryable=True,
        )
    outputs: dict[str, Any] = {"status_code": code}
    if f.response_fields:
        try:
            data = resp.json()
        except ValueError:
            data = None
        for path in f.response_fields:  # nested as in the response: {{ actions.x.outputs.a.b }}
            *parents, leaf = path.split(".")
            node = outputs
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = _pick(data, path)
    return outputs

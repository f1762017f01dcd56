"""Per-request context (tenant id, request id) carried in contextvars for logs and traces."""

from __future__ import annotations

import contextvars
import uuid

tenant_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("tenant_id", default="")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

REQUEST_ID_HEADER = "x-request-id"


def new_request_id() -> str:
    return uuid.uuid4().hex

"""Structured logging: JSON lines in containers, readable text on a terminal.

Every record carries the tenant id and request id of the rpc it belongs to (from
``crmflow.grpc.context``). Secrets must never be passed to a logger; values that may carry them
are redacted by :func:`redact`.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from crmflow.grpc.context import request_id_var, tenant_id_var

_SECRET_KEYS = ("secret", "password", "token", "api_key", "apikey", "authorization")


def redact(data: dict[str, Any]) -> dict[str, Any]:
    return {k: ("***" if any(s in k.lower() for s in _SECRET_KEYS) else v) for k, v in data.items()}


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.tenant_id = tenant_id_var.get()
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("tenant_id", "request_id", "service", "rpc_method", "rpc_code"):
            value = getattr(record, key, None)
            if value:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(service: str, level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Temporal's and gRPC's own chatter stays at WARNING unless asked for.
    for noisy in ("temporalio", "grpc", "aiosqlite", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))

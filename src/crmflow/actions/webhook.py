"""Send a webhook: GET/POST to an external URL, API key or signed requests, response outputs."""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from crmflow.actions.registry import ActionSpec
from crmflow.model.base import Model

SEND_WEBHOOK = "send_webhook"


class WebhookAuth(StrEnum):
    NONE = "none"
    API_KEY = "api_key"  # a tenant secret sent as a header or query parameter
    SIGNATURE = "signature"  # HMAC-SHA256 over timestamp + body with a tenant secret


class WebhookFields(Model):
    method: str = "POST"
    url: str
    auth: WebhookAuth = WebhookAuth.NONE
    secret_name: str = ""  # tenant secret holding the API key / signing key
    api_key_name: str = "X-API-Key"
    api_key_in: str = "header"  # "header" | "query"
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    # POST body; None = the enrolled record's properties (HubSpot's default payload).
    body: dict[str, Any] | None = None
    # Dotted paths in the JSON response made available to later actions.
    response_fields: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> WebhookFields:
        self.method = self.method.upper()
        if self.method not in ("GET", "POST"):
            raise ValueError("method is GET or POST")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an absolute http(s) URL")
        if self.auth != WebhookAuth.NONE and not self.secret_name:
            raise ValueError("authentication needs secret_name")
        if self.api_key_in not in ("header", "query"):
            raise ValueError("api_key_in is 'header' or 'query'")
        return self


def _summary(f: WebhookFields) -> str:
    return f"Send webhook to {urlsplit(f.url).hostname}"


SPECS = [
    ActionSpec(
        SEND_WEBHOOK,
        WebhookFields,
        "Send a webhook",
        "webhook",
        token_fields=("url", "body", "headers", "query"),
        plan_feature="operations_hub",
        summary=_summary,
    ),  # type: ignore[arg-type]
]

"""Communication actions: marketing email, internal email notification, in-app notification."""

from __future__ import annotations

from pydantic import Field, model_validator

from crmflow.actions.registry import ActionSpec
from crmflow.model.base import Model

SEND_MARKETING_EMAIL = "send_marketing_email"
SEND_INTERNAL_EMAIL = "send_internal_email"
SEND_IN_APP_NOTIFICATION = "send_in_app_notification"


class MarketingEmailFields(Model):
    """Sent to the enrolled contact; unsubscribed contacts are skipped (and logged)."""

    subject: str
    body: str  # HTML; personalization tokens are rendered before sending
    from_name: str = ""
    to_property: str = "email"


class InternalEmailFields(Model):
    # Email addresses, owner ids, or "record_owner".
    recipients: list[str] = Field(min_length=1)
    subject: str
    body: str


class InAppNotificationFields(Model):
    user_ids: list[str] = Field(default_factory=list)
    team_ids: list[str] = Field(default_factory=list)
    title: str
    body: str = ""
    link: str = ""

    @model_validator(mode="after")
    def _someone(self) -> InAppNotificationFields:
        if not (self.user_ids or self.team_ids):
            raise ValueError("notify at least one user or team")
        return self


SPECS = [
    ActionSpec(
        SEND_MARKETING_EMAIL,
        MarketingEmailFields,
        "Send marketing email",
        "communication",
        token_fields=("subject", "body"),
        plan_feature="marketing_email",
        summary=lambda f: f"Send email: {f.subject}",
    ),  # type: ignore[attr-defined]
    ActionSpec(
        SEND_INTERNAL_EMAIL,
        InternalEmailFields,
        "Send internal email notification",
        "communication",
        token_fields=("subject", "body"),
        summary=lambda f: f"Notify by email: {f.subject}",
    ),  # type: ignore[attr-defined]
    ActionSpec(
        SEND_IN_APP_NOTIFICATION,
        InAppNotificationFields,
        "Send in-app notification",
        "communication",
        token_fields=("title", "body"),
        summary=lambda f: f"Notify in app: {f.title}",
    ),  # type: ignore[attr-defined]
]

"""Communication actions: marketing email and internal email over SMTP, in-app notifications."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Any

from crmflow.actions import communication as spec
from crmflow.actions.communication import (
    InAppNotificationFields,
    InternalEmailFields,
    MarketingEmailFields,
)
from crmflow.errors import InvalidArgument
from crmflow.settings import Settings
from executor.activities.base import ActionContext, Skip, handles
from executor.activities.record import OWNER_PROPERTY

log = logging.getLogger("crmflow.executor.email")


class RecipientRefused(Exception):
    """Every recipient was refused by the SMTP server (not retried)."""


def _send(settings: Settings, msg: EmailMessage) -> None:
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
        try:
            smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise RecipientRefused(str(exc)) from None


async def send_email(
    settings: Settings,
    *,
    to: list[str],
    subject: str,
    html: str,
    from_name: str = "",
    key: str = "",
) -> str:
    msg = EmailMessage()
    msg["From"] = (
        formataddr((from_name, settings.smtp_sender)) if from_name else settings.smtp_sender
    )
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="crmflow.local")
    if key:  # lets a receiving system drop a duplicate after an at-least-once redelivery
        msg["X-Crmflow-Idempotency-Key"] = key
    msg.set_content(_plain(html))
    msg.add_alternative(html, subtype="html")
    await asyncio.to_thread(_send, settings, msg)
    return str(msg["Message-ID"])


def _plain(html: str) -> str:
    import re

    return re.sub(r"<[^>]+>", "", html)


@handles(spec.SEND_MARKETING_EMAIL)
async def send_marketing_email(ctx: ActionContext, f: MarketingEmailFields) -> dict[str, Any]:
    r = ctx.req
    if r.object_type != "contact":
        raise InvalidArgument.field("action_type", "marketing email is sent to contacts only")
    props = (await ctx.store.get(r.tenant_id, r.object_type, r.record_id)).properties
    to = str(props.get(f.to_property) or "")
    if not to:
        raise Skip(f"the contact has no {f.to_property}")
    status = await ctx.store.get_subscription_status(r.tenant_id, r.record_id)
    if status == "unsubscribed":
        log.info("marketing email to contact %s skipped: unsubscribed", r.record_id)
        raise Skip("the contact unsubscribed from marketing email")
    if props.get("marketing_contact_status") == "non_marketing":
        raise Skip("the contact is a non-marketing contact")
    mid = await send_email(
        ctx.deps.settings,
        to=[to],
        subject=f.subject,
        html=f.body,
        from_name=f.from_name,
        key=r.idempotency_key,
    )
    return {"message_id": mid, "to": to}


async def _owner_emails(ctx: ActionContext, ids: list[str]) -> dict[str, str]:
    owners = await ctx.store.list_owners(ctx.req.tenant_id)
    return {o.owner_id: o.email for o in owners if o.email}


@handles(spec.SEND_INTERNAL_EMAIL)
async def send_internal_email(ctx: ActionContext, f: InternalEmailFields) -> dict[str, Any]:
    r = ctx.req
    wanted = list(f.recipients)
    if "record_owner" in wanted:
        props = (await ctx.store.get(r.tenant_id, r.object_type, r.record_id)).properties
        wanted = [
            str(props.get(OWNER_PROPERTY) or "") if w == "record_owner" else w for w in wanted
        ]
    emails = {w for w in wanted if "@" in w}
    ids = [w for w in wanted if w and "@" not in w]
    if ids:
        known = await _owner_emails(ctx, ids)
        emails |= {known[i] for i in ids if i in known}
    if not emails:
        raise Skip("no recipient with an email address")
    mid = await send_email(
        ctx.deps.settings, to=sorted(emails), subject=f.subject, html=f.body, key=r.idempotency_key
    )
    return {"message_id": mid, "recipients": len(emails)}


@handles(spec.SEND_IN_APP_NOTIFICATION)
async def send_in_app_notification(
    ctx: ActionContext, f: InAppNotificationFields
) -> dict[str, Any]:
    r = ctx.req
    users = list(f.user_ids)
    if f.team_ids:
        owners = {o.owner_id: o for o in await ctx.store.list_owners(r.tenant_id)}
        for team in f.team_ids:
            members = owners[team].member_ids if team in owners else []
            users += [m for m in members if m not in users]
    for user in users:
        await ctx.deps.history.add_notification(
            tenant_id=r.tenant_id,
            user_id=user,
            title=f.title,
            body=f.body,
            link=f.link,
            workflow_id=r.workflow_id,
            object_type=r.object_type,
            record_id=r.record_id,
            key=r.idempotency_key,
        )
    return {"notified": len(users)}

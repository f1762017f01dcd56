"""Email actions against a real SMTP server (aiosmtpd) and in-app notifications."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from temporalio.testing import WorkflowEnvironment

from crmflow.records.port import Owner
from tests.helpers import free_port
from tests.workflows.harness import act, definition, enrollment, make_settings, running_worker


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _html(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/html":
            return part.get_payload(decode=True).decode()  # type: ignore[union-attr]
    return ""


async def test_marketing_email_is_personalised_and_unsubscribed_contacts_are_skipped(
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    tenant_id: str,
    smtp: tuple[Inbox, int],
) -> None:
    inbox, port = smtp
    actions = [
        act(
            "mail",
            "send_marketing_email",
            subject="Hi {{ record.firstname }}",
            body="<p>Welcome, {{ record.firstname }}!</p>",
            from_name="Acme",
        )
    ]
    settings = make_settings(tmp_path, task_queue, smtp_port=port)
    async with running_worker(temporal_env.client, tmp_path, task_queue, settings=settings) as h:
        h.store.put(tenant_id, "contact", "c1", email="ada@example.com", firstname="Ada")
        h.store.put(tenant_id, "contact", "c2", email="bob@example.com", firstname="Bob")
        h.store.subscriptions[(tenant_id, "c2")] = "unsubscribed"
        first = await h.start(enrollment(tenant_id, "c1", definition(actions)))
        second = await h.start(enrollment(tenant_id, "c2", definition(actions)))
        await first.result()
        await second.result()
        assert [to for to, _ in inbox.messages] == [["ada@example.com"]]
        msg = inbox.messages[0][1]
        assert msg["Subject"] == "Hi Ada" and "Acme" in msg["From"]
        assert "Welcome, Ada!" in _html(msg)
        assert msg["X-Crmflow-Idempotency-Key"].startswith(first.id)
        [row] = await h.history.timeline(tenant_id=tenant_id, run_workflow_id=second.id)
        assert row.status == "skipped" and "unsubscribed" in row.reason


async def test_internal_email_goes_to_owners_and_addresses(
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    tenant_id: str,
    smtp: tuple[Inbox, int],
) -> None:
    inbox, port = smtp
    actions = [
        act(
            "mail",
            "send_internal_email",
            recipients=["record_owner", "ops@acme.test"],
            subject="Hot lead: {{ record.email }}",
            body="Call them",
        )
    ]
    settings = make_settings(tmp_path, task_queue, smtp_port=port)
    async with running_worker(temporal_env.client, tmp_path, task_queue, settings=settings) as h:
        h.store.owners[tenant_id] = [Owner(owner_id="u1", email="owner@acme.test")]
        h.store.put(tenant_id, "contact", "c1", email="ada@example.com", hubspot_owner_id="u1")
        await h.run(enrollment(tenant_id, "c1", definition(actions)))
        [(to, msg)] = inbox.messages
        assert sorted(to) == ["ops@acme.test", "owner@acme.test"]
        assert msg["Subject"] == "Hot lead: ada@example.com"


async def test_smtp_down_is_retried_then_logged_as_failed(
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    tenant_id: str,
) -> None:
    """Nothing listens on the port: every attempt fails, the history shows the attempts."""
    from datetime import timedelta

    from executor import dispatch
    from temporalio.common import RetryPolicy

    fast = RetryPolicy(initial_interval=timedelta(milliseconds=50), maximum_attempts=3)
    original = dispatch.ACTION_ACTIVITIES["send_internal_email"]
    dispatch.ACTION_ACTIVITIES["send_internal_email"] = type(original)(
        "send_internal_email", retry=fast
    )
    try:
        settings = make_settings(tmp_path, task_queue, smtp_port=free_port())
        actions = [
            act("mail", "send_internal_email", recipients=["ops@acme.test"], subject="s", body="b")
        ]
        async with running_worker(
            temporal_env.client, tmp_path, task_queue, settings=settings
        ) as h:
            h.store.put(tenant_id, "contact", "c1")
            handle = await h.start(enrollment(tenant_id, "c1", definition(actions)))
            assert (await handle.result()).status == "completed"
            [row] = await h.history.timeline(tenant_id=tenant_id, run_workflow_id=handle.id)
            assert row.status == "failed" and row.attempts == 3
    finally:
        dispatch.ACTION_ACTIVITIES["send_internal_email"] = original

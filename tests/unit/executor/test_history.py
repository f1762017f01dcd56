"""Run history repository: progress, paging, notifications, round robin, 90-day pruning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from executor.db import migrate
from executor.history import History
from executor.payloads import ActionOutcome, RunProgress

from crmflow.db import create_engine


async def _history(db_url: str) -> History:
    await migrate(db_url)
    return History(create_engine(db_url))


def _progress(
    tenant: str,
    n: int,
    *,
    status: str = "running",
    at: datetime,
    outcomes: list[ActionOutcome] | None = None,
) -> RunProgress:
    return RunProgress(
        tenant_id=tenant,
        run_workflow_id=f"run-{n}",
        workflow_id="wf",
        revision=1,
        object_type="contact",
        record_id=f"c{n}",
        enrolled_at=at,
        status=status,
        at=at,  # type: ignore[arg-type]
        outcomes=outcomes or [],
    )


async def test_progress_listing_paging_and_retention(db_url: str, tenant_id: str) -> None:
    h = await _history(db_url)
    old = datetime.now(UTC) - timedelta(days=120)
    out = ActionOutcome(
        action_id="a1",
        action_type="set_property",
        status="succeeded",
        finished_at=old,
        idempotency_key="k",
    )
    await h.record_progress(_progress(tenant_id, 0, status="completed", at=old, outcomes=[out]))
    await h.record_progress(_progress(tenant_id, 0, status="completed", at=old, outcomes=[out]))
    for n in range(1, 6):
        await h.record_progress(_progress(tenant_id, n, at=datetime.now(UTC)))
    assert len(await h.timeline(tenant_id=tenant_id, run_workflow_id="run-0")) == 1  # no dup
    page = await h.list_runs(tenant_id=tenant_id, workflow_id="wf", limit=4)
    assert len(page.runs) == 4 and page.next_offset == 4
    rest = await h.list_runs(tenant_id=tenant_id, workflow_id="wf", offset=4, limit=4)
    assert len(rest.runs) == 2 and rest.next_offset is None
    done = await h.list_runs(tenant_id=tenant_id, workflow_id="wf", status="completed")
    assert [r.run_workflow_id for r in done.runs] == ["run-0"]
    assert await h.prune() >= 2  # the 120-day-old run and its action log
    assert await h.timeline(tenant_id=tenant_id, run_workflow_id="run-0") == []
    assert len((await h.list_runs(tenant_id=tenant_id, workflow_id="wf")).runs) == 5
    await h.engine.dispose()


async def test_round_robin_is_stable_per_key(db_url: str, tenant_id: str) -> None:
    h = await _history(db_url)
    picks = [
        await h.rotate(
            tenant_id=tenant_id, rotation_key="wf/a", candidates=["u1", "u2"], key=f"k{i}"
        )
        for i in range(3)
    ]
    again = await h.rotate(
        tenant_id=tenant_id, rotation_key="wf/a", candidates=["u1", "u2"], key="k0"
    )
    assert picks == ["u1", "u2", "u1"] and again == "u1"
    await h.engine.dispose()


async def test_one_batch_applies_items_in_order_and_dedupes(db_url: str, tenant_id: str) -> None:
    """Concurrent writers share one batch: runs end in their last state, one log row per
    (run, action, visit), the first stored side effect wins, failed attempts are counted."""
    import asyncio

    h = await _history(db_url)
    now = datetime.now(UTC)

    def out(action: str, status: str = "succeeded", attempts: int = 1) -> ActionOutcome:
        return ActionOutcome(
            action_id=action,
            action_type="send_webhook",
            status=status,  # type: ignore[arg-type]
            attempts=attempts,
            finished_at=now,
            idempotency_key=f"run-1/{action}",
        )

    await h.record_attempt_error(tenant_id=tenant_id, key="run-1/b", attempt=1, error="boom")
    await h.record_attempt_error(tenant_id=tenant_id, key="run-1/b", attempt=2, error="boom")
    await h.record_progress(_progress(tenant_id, 2, at=now))  # exists before the batch
    await asyncio.gather(
        h.record_progress(_progress(tenant_id, 1, at=now, outcomes=[out("a")])),
        h.record_progress(
            _progress(
                tenant_id, 1, status="completed", at=now, outcomes=[out("a"), out("b", "failed", 0)]
            )
        ),
        h.record_progress(_progress(tenant_id, 2, status="unenrolled", at=now)),
        h.store_effect(tenant_id=tenant_id, key=f"{tenant_id}-k", result={"n": 1}),
        h.store_effect(tenant_id=tenant_id, key=f"{tenant_id}-k", result={"n": 2}),
    )
    run1 = await h.get_run(tenant_id=tenant_id, run_workflow_id="run-1")
    run2 = await h.get_run(tenant_id=tenant_id, run_workflow_id="run-2")
    assert run1 is not None and run1.status == "completed" and run1.ended_at is not None
    assert run2 is not None and run2.status == "unenrolled" and run2.ended_at is not None
    log = await h.timeline(tenant_id=tenant_id, run_workflow_id="run-1")
    assert [(r.action_id, r.status, r.attempts) for r in log] == [
        ("a", "succeeded", 1),
        ("b", "failed", 2),
    ]
    assert await h.completed_effect(key=f"{tenant_id}-k") == {"n": 1}
    await h.engine.dispose()

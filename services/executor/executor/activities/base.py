"""The activity side of dispatch: handlers registered by action type, one generic wrapper.

The wrapper gives every action the same guarantees: a completed side effect is never redone
(its result is stored under the action's idempotency key and returned to any later attempt),
inputs are resolved by the InputResolver, fields are validated by the catalogue's model, and
user mistakes (bad fields, missing records) fail without retries. Each failed attempt is
written to the run history so the timeline shows retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from crmflow.actions.catalogue import default_registry
from crmflow.errors import CrmflowError, FailedPrecondition, InvalidArgument, NotFound
from crmflow.records.port import RecordStore
from crmflow.settings import Settings
from executor import dispatch
from executor.history import History
from executor.payloads import ActionOutcome, ActionRequest, ActionResult, RunProgress
from executor.resolver import InputResolver
from executor.secrets import FileSecrets, SecretStore

log = logging.getLogger("crmflow.executor.activities")


@dataclass
class Deps:
    """What activities need; built once by the composition root."""

    settings: Settings
    store: RecordStore
    resolver: InputResolver
    history: History
    secrets: SecretStore | None = None
    # Filled lazily by the flow actions (EnrollmentService client).
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class ActionContext:
    deps: Deps
    req: ActionRequest
    values: dict[str, Any]  # resolved fields, before validation

    @property
    def store(self) -> RecordStore:
        return self.deps.store

    @property
    def secrets(self) -> SecretStore:
        if self.deps.secrets is None:
            self.deps.secrets = FileSecrets(self.deps.settings.data_dir / "secrets")
        return self.deps.secrets


class Skip(Exception):
    """The action decided not to act (logged as skipped with the reason)."""

    def __init__(self, reason: str, outputs: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.outputs = outputs or {}


Handler = Callable[[ActionContext, Any], Awaitable[dict[str, Any] | None]]

HANDLERS: dict[str, Handler] = {}
STRICT = True  # every dispatched action type must have a handler


def handles(action_type: str) -> Callable[[Handler], Handler]:
    """Register the handler of an action type (one per type; duplicates fail loudly)."""

    def deco(fn: Handler) -> Handler:
        if action_type in HANDLERS:
            raise ValueError(f"two handlers for action type {action_type!r}")
        HANDLERS[action_type] = fn
        return fn

    return deco


def _non_retryable(exc: CrmflowError) -> ApplicationError:
    kind = type(exc).__name__
    if isinstance(exc, InvalidArgument):
        kind = "InvalidArgument"
    elif isinstance(exc, NotFound):
        kind = "NotFound"
    elif isinstance(exc, FailedPrecondition):
        kind = "NonRetryable"
    return ApplicationError(str(exc), type=kind, non_retryable=True)


async def execute(deps: Deps, handler: Handler, req: ActionRequest) -> ActionResult:
    info = activity.info()
    started = datetime.now(UTC)
    # A first remote attempt cannot have a completed predecessor; local activities re-run with
    # attempt 1 after a worker crash, so they always look. Types that store no result (the CRM
    # deduplicates them by the key) have nothing to look up.
    dedupe = dispatch.ACTION_ACTIVITIES[req.action_type].dedupe
    maybe_done = dedupe and (info.attempt > 1 or info.is_local)
    done = await deps.history.completed_effect(key=req.idempotency_key) if maybe_done else None
    if done is not None:
        log.info(
            "action %s already done (%s); not repeating it", req.action_id, req.idempotency_key
        )
        prior = ActionResult.model_validate(done)
        if req.final_progress is not None:  # idempotent: one row per (run, action, visit)
            prior.recorded = True
            await deps.history.record_progress(_final_progress(req, prior))
        return prior
    try:
        spec = default_registry().get(req.action_type, req.type_version)
        values = await deps.resolver.resolve(req, dict(req.fields))
        fields: BaseModel = spec.parse_fields(values)
        try:
            outputs = await handler(ActionContext(deps, req, values), fields) or {}
            result = ActionResult(outputs=outputs, attempt=info.attempt, started_at=started)
        except Skip as skip:
            log.info("action %s skipped: %s", req.action_id, skip.reason)
            result = ActionResult(
                status="skipped",
                reason=skip.reason,
                outputs=skip.outputs,
                attempt=info.attempt,
                started_at=started,
            )
    except CrmflowError as exc:
        await _attempt_failed(deps, req, info.attempt, exc)
        raise _non_retryable(exc) from None
    except Exception as exc:
        await _attempt_failed(deps, req, info.attempt, exc)
        raise
    # The dedupe record and (on the run's last step) the run history share one group commit;
    # both are durable before the activity completes.
    writes = []
    if req.final_progress is not None:
        result.recorded = True
        writes.append(deps.history.record_progress(_final_progress(req, result)))
    if dedupe:
        writes.append(
            deps.history.store_effect(
                tenant_id=req.tenant_id,
                key=req.idempotency_key,
                result=result.model_dump(mode="json"),
            )
        )
    if writes:
        await asyncio.gather(*writes)
    return result


def _final_progress(req: ActionRequest, result: ActionResult) -> RunProgress:
    """The workflow's closing run-history update plus this action's own outcome."""
    assert req.final_progress is not None
    p = req.final_progress
    # Timeline times are workflow time (the workflow stamps the other outcomes with
    # workflow.now()): this attempt's scheduling in workflow/server time plus its duration.
    info = activity.info()
    anchor = max(p.at, info.current_attempt_scheduled_time or p.at)
    now = anchor + (datetime.now(UTC) - (result.started_at or datetime.now(UTC)))
    outcome = ActionOutcome(
        action_id=req.action_id,
        action_type=req.action_type,
        visit=req.visit,
        status=result.status,
        reason=result.reason,
        attempts=result.attempt,
        started_at=result.started_at,
        finished_at=now,
        outputs=result.outputs,
        idempotency_key=req.idempotency_key,
    )
    return p.model_copy(update={"outcomes": [*p.outcomes, outcome], "at": now})


async def _attempt_failed(deps: Deps, req: ActionRequest, attempt: int, exc: BaseException) -> None:
    try:
        await deps.history.record_attempt_error(
            tenant_id=req.tenant_id,
            key=req.idempotency_key,
            attempt=attempt,
            error=f"{type(exc).__name__}: {exc}",
        )
    except Exception:  # the history must never turn a retryable failure into another one
        log.exception("could not record the failed attempt of %s", req.idempotency_key)


def build_action_activities(deps: Deps, *, queue: str = "main") -> list[Callable[..., Any]]:
    """One Temporal activity per dispatched action type on this queue ('main' / custom code)."""
    import executor.activities.catalogue  # noqa: F401  (registers every handler)

    missing = sorted(set(dispatch.ACTION_ACTIVITIES) - set(HANDLERS))
    if missing and STRICT:
        raise RuntimeError(f"action types without a handler: {missing}")
    out = []
    for action_type, opts in dispatch.ACTION_ACTIVITIES.items():
        if opts.queue != queue or action_type not in HANDLERS:
            continue
        out.append(_activity(deps, opts.activity_name, HANDLERS[action_type]))
    return out


def _activity(deps: Deps, name: str, handler: Handler) -> Callable[..., Any]:
    async def run(req: ActionRequest) -> ActionResult:
        return await execute(deps, handler, req)

    run.__name__ = name.replace(".", "_")
    return activity.defn(name=name)(run)

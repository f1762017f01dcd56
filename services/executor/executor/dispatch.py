"""How each side-effecting action type runs as an activity: name, timeouts, retries, queue.

The interpreter looks an action type up here and never names a type itself, so adding an action
means: a fields model in ``crmflow.actions``, a handler in ``executor.activities`` and a line
here. An unknown type fails loudly (``UnknownActionActivity``). Pure data: imported inside the
workflow sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio.common import RetryPolicy

ACTIVITY_PREFIX = "action."
CUSTOM_CODE_QUEUE = "custom_code"  # role name; the queue itself comes from settings


class UnknownActionActivity(LookupError):
    pass


@dataclass(frozen=True)
class ActionActivity:
    action_type: str
    start_to_close: timedelta = timedelta(seconds=30)
    schedule_to_close: timedelta | None = None
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(minutes=5),
            maximum_attempts=10,
            non_retryable_error_types=["InvalidArgument", "NotFound", "NonRetryable"],
        )
    )
    queue: str = "main"  # "main" or CUSTOM_CODE_QUEUE
    # Short, idempotent CRM steps run as local activities (no task round trip through the
    # server); a crash re-runs them, and their idempotency keys make that harmless.
    local: bool = False
    # Store the result under the idempotency key so a later attempt returns it. Off for CRM
    # writes: the CRM itself deduplicates by the key (and relative writes pin their value).
    dedupe: bool = True

    @property
    def activity_name(self) -> str:
        return f"{ACTIVITY_PREFIX}{self.action_type}"


_NON_RETRYABLE = ["InvalidArgument", "NotFound", "NonRetryable", "PermissionDenied"]

# CRM writes: quick, idempotent (keyed), retried briefly then reported as failed.
_CRM = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=8,
    non_retryable_error_types=_NON_RETRYABLE,
)
# Email: SMTP hiccups are retried for a while; a rejected recipient is not.
_MAIL = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=12,
    non_retryable_error_types=[*_NON_RETRYABLE, "RecipientRefused"],
)
# Webhooks (HubSpot's documented behaviour): 5xx and timeouts retried for up to 3 days, the
# first retry after 1 minute, at most 8 hours apart; 4xx (except 429) never retried.
WEBHOOK_RETRY = RetryPolicy(
    initial_interval=timedelta(minutes=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(hours=8),
    maximum_attempts=0,
    non_retryable_error_types=[*_NON_RETRYABLE, "WebhookClientError", "AddressRefused"],
)
# Custom code: user code that failed once will most likely fail again; retry little.
_CODE = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=3,
    non_retryable_error_types=[*_NON_RETRYABLE, "CustomCodeError"],
)
_FLOW = _CRM

_TABLE = [
    *(
        ActionActivity(t, retry=_CRM, dedupe=False, local=True)
        for t in (
            "set_property",
            "copy_property",
            "clear_property",
            "create_record",
            "create_task",
            "create_note",
            "associate_records",
            "remove_association",
            "add_to_list",
            "remove_from_list",
            "set_marketing_status",
            "format_data",
        )
    ),
    ActionActivity("rotate_owner", retry=_CRM),
    ActionActivity("send_marketing_email", start_to_close=timedelta(seconds=60), retry=_MAIL),
    ActionActivity("send_internal_email", start_to_close=timedelta(seconds=60), retry=_MAIL),
    ActionActivity("send_in_app_notification", retry=_CRM),
    ActionActivity(
        "send_webhook",
        start_to_close=timedelta(seconds=40),  # 3 s connect + 30 s response + slack
        schedule_to_close=timedelta(days=3),
        retry=WEBHOOK_RETRY,
    ),
    ActionActivity(
        "custom_code", start_to_close=timedelta(seconds=40), retry=_CODE, queue=CUSTOM_CODE_QUEUE
    ),
    ActionActivity("enroll_in_workflow", retry=_FLOW),
    ActionActivity("unenroll_from_workflows", retry=_FLOW),
]

ACTION_ACTIVITIES: dict[str, ActionActivity] = {a.action_type: a for a in _TABLE}


def activity_for(action_type: str) -> ActionActivity:
    try:
        return ACTION_ACTIVITIES[action_type]
    except KeyError:
        raise UnknownActionActivity(
            f"no activity registered for action type {action_type!r}"
        ) from None


# Interpreter limits (here, outside the sandboxed workflow module, so tests can lower them).
STEPS_PER_RUN = 100  # continue-as-new after this many steps (go-to loops, long workflows)
MAX_STEPS = 5000  # a graph looping without end is stopped and reported as failed

# Internal activities (reads and bookkeeping), run as local activities: idempotent and short.
FETCH_RECORD = "crmflow.fetch_record"
RESOLVE_VALUE = "crmflow.resolve_value"
RECORD_PROGRESS = "crmflow.record_progress"
WORKER_CONFIG = "crmflow.worker_config"
INTERNAL_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,
)

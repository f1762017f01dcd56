"""Composition root of the enrollment service.

Builds: its database (migrated), the ledger, the Temporal client (CrmflowPlugin), the CRM port
(``open_record_store``; optional until configured), the trigger index loaded from the active
revisions, the gRPC server, the service's own Temporal worker on ``crmflow-enrollment``
(backfills, schedule ticks, retention, recovery) and the start-up recovery sweep.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

from crmflow.criteria import index as criteria_index
from crmflow.db import create_engine, session_factory
from crmflow.grpc.server import RunningServer, start_server, wait_for_termination
from crmflow.records.port import RecordStore
from crmflow.settings import Settings
from crmflow.temporal.client import connect
from enrollment.db import migrate
from enrollment.enroller import Enroller, utcnow
from enrollment.ingest import Ingestor
from enrollment.ledger import Ledger
from enrollment.servicer import EnrollmentServicer, binding
from enrollment.starter import Starter
from enrollment.trigger_index import TriggerIndex
from enrollment.workflows import ActiveWorkflows

log = logging.getLogger("crmflow.enrollment")

SERVICE = "enrollment"
TASK_QUEUE = "crmflow-enrollment"


async def open_records(settings: Settings) -> RecordStore | None:
    """The CRM port, or None when no adapter is available (rules needing it are skipped)."""
    try:
        from crmflow.records.factory import open_record_store
    except ImportError:
        log.warning("crmflow.records.factory is not available: running without the CRM port")
        return None
    store: Any = open_record_store(settings)
    if asyncio.iscoroutine(store):
        store = await store
    return store  # type: ignore[no-any-return]


async def start(
    settings: Settings, *, port: int | None = None, records: RecordStore | None = None
) -> RunningServer:
    url = settings.service_database_url(SERVICE)
    await migrate(url)
    engine = create_engine(url)
    ledger = Ledger(session_factory(engine))
    client = await connect(settings.temporal)
    if records is None:
        records = await open_records(settings)
    index = TriggerIndex()
    starter = Starter(client, settings.temporal.task_queue)
    enroller = Enroller(ledger=ledger, starter=starter, records=records, clock=utcnow)
    workflows = ActiveWorkflows(index=index, ledger=ledger, enroller=enroller)
    ingestor = Ingestor(index=index, enroller=enroller)

    from enrollment.runtime import Runtime

    runtime = Runtime(
        settings=settings,
        client=client,
        ledger=ledger,
        index=index,
        enroller=enroller,
        workflows=workflows,
        ingestor=ingestor,
        records=records,
        task_queue=TASK_QUEUE,
    )
    await runtime.wire()
    loaded = await workflows.load()
    log.info(
        "enrollment: %d active workflow revision(s) indexed (%s trigger index)",
        loaded,
        ("compiled" if criteria_index.compiled() else "pure-Python")
        + (", C loop" if criteria_index.NATIVE is not None else ""),
    )
    servicer = EnrollmentServicer(
        workflows=workflows,
        enroller=enroller,
        ingestor=ingestor,
        clock=utcnow,
        extras=runtime.review,
    )
    running = await start_server(
        [binding(servicer)],
        settings=settings,
        port=settings.port_for(SERVICE) if port is None else port,
    )
    await runtime.start_background()

    async def _cleanup() -> None:
        await runtime.stop()
        close = getattr(records, "close", None)
        if close is not None:
            res = close()
            if asyncio.iscoroutine(res):
                await res
        await ledger.close()
        await engine.dispose()

    running.on_stop.append(_cleanup)
    return running


async def run(settings: Settings) -> None:
    running = await start(settings)
    # The index is large and long-lived: keep it out of the cyclic GC's full collections,
    # which otherwise pause event handling for ~100 ms at 10,000 workflows. (Here, not in
    # start(): in a test process several services start and their garbage must stay
    # collectable.)
    gc.freeze()
    await wait_for_termination(running, settings.grace_seconds)

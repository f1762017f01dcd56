"""Composition root of editor-api.

Builds the database (migrated to head), the action registry, the CRM property source, the
enrollment client and the hand-off retrier, then serves EditorService. Tests and embedders may
inject ``properties`` (any object with ``list_properties``, e.g. a ``SqlRecordStore``; None turns
the unknown-property check off) and
``enrollment`` (an ``EnrollmentGateway``); by default they come from the settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from typing import Any

from crmflow.actions.catalogue import default_registry
from crmflow.api.editor.v1 import editor_service_pb2 as pb
from crmflow.api.editor.v1 import editor_service_pb2_grpc as pb_grpc
from crmflow.db import create_engine, session_factory
from crmflow.grpc.server import RunningServer, ServiceBinding, start_server, wait_for_termination
from crmflow.settings import Settings
from editor_api.db import migrate
from editor_api.enrollment_client import EnrollmentGateway, GrpcEnrollmentGateway
from editor_api.lifecycle import Lifecycle
from editor_api.service import EditorCore
from editor_api.servicer import EditorServicer
from editor_api.tenant_plans import TenantPlans
from editor_api.validation import PropertySource

SERVICE_NAME = "editor-api"
FULL_NAME = pb.DESCRIPTOR.services_by_name["EditorService"].full_name
log = logging.getLogger("editor_api")


class _BoundedProperties:
    """Property look-ups with a deadline: a slow CRM degrades validation, it never hangs it."""

    def __init__(self, inner: Any, timeout: float = 3.0) -> None:
        self.inner = inner
        self.timeout = timeout

    async def list_properties(self, tenant_id: str, object_type: str) -> list[Any]:
        return list(
            await asyncio.wait_for(self.inner.list_properties(tenant_id, object_type), self.timeout)
        )

    async def get_event_definition(self, tenant_id: str, name: str) -> Any:
        return await asyncio.wait_for(
            self.inner.get_event_definition(tenant_id, name), self.timeout
        )


class _FromSettings:
    """Marker: build the property source from the settings (the CRM port)."""


FROM_SETTINGS = _FromSettings()


async def _default_properties(settings: Settings) -> Any:
    try:
        from crmflow.records.factory import open_record_store

        return await open_record_store(settings)
    except Exception as exc:  # no CRM configured: the unknown-property check is skipped
        log.warning("no CRM property source (%s); unknown-property checks are off", exc)
        return None


async def start(
    settings: Settings,
    *,
    port: int | None = None,
    properties: PropertySource | _FromSettings | None = FROM_SETTINGS,
    enrollment: EnrollmentGateway | None = None,
    retry_interval: float = 2.0,
) -> RunningServer:
    url = settings.service_database_url("editor")
    await migrate(url)
    engine = create_engine(url)
    owned_store = None
    if isinstance(properties, _FromSettings):
        owned_store = await _default_properties(settings)
        properties = owned_store
    gateway = enrollment or GrpcEnrollmentGateway(settings.enrollment_address, settings)
    core = EditorCore(
        session_factory(engine),
        registry=default_registry(),
        properties=_BoundedProperties(properties) if properties is not None else None,
    )
    life = Lifecycle(core, gateway)
    servicer = EditorServicer(core, life, TenantPlans(core.sessions))
    binding = ServiceBinding(
        FULL_NAME, lambda server: pb_grpc.add_EditorServiceServicer_to_server(servicer, server)
    )
    try:
        running = await start_server(
            [binding],
            settings=settings,
            port=settings.port_for(SERVICE_NAME) if port is None else port,
        )
    except BaseException:
        await engine.dispose()
        raise
    retrier = asyncio.create_task(
        life.handoffs.retry_loop(retry_interval), name="editor-handoff-retry"
    )

    async def cleanup() -> None:
        retrier.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await retrier
        if enrollment is None:
            await gateway.close()
        if owned_store is not None and hasattr(owned_store, "close"):
            await owned_store.close()
        await engine.dispose()

    running.on_stop.append(cleanup)
    return running


def tune_gc() -> None:
    """A draft of 500 actions is ~50k Python objects; the default gen-0 threshold (700) makes
    the cyclic GC walk them several times per edit (tens of ms at p99). Start-up objects are
    frozen out of collection and the thresholds raised; reference counting still frees almost
    everything, the GC only has cycles to find."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)


async def run(settings: Settings) -> None:
    running = await start(settings)
    tune_gc()
    await wait_for_termination(running, grace=settings.grace_seconds)

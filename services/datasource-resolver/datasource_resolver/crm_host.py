"""Hosting the embedded CRM inside the datasource-resolver process.

In embedded mode (``settings.crm_mode == "embedded"``) this process is the one owner of the SQL
CRM store: it serves ``crmflow.api.crm.v1.CrmService`` for every other service and runs the outbox
dispatcher that delivers change events (written in the same transaction as the change) to
``EnrollmentService.IngestEvents``. The resolver itself reads the store in-process, which is why
the two live together: data-source look-ups never leave the process.

The CRM servicer and outbox live in ``crmflow.records`` (issue 3); this module only wires them.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from crmflow.grpc.channel import open_channel
from crmflow.grpc.server import ServiceBinding
from crmflow.model.records import ChangeEvent
from crmflow.records.port import RecordStore
from crmflow.settings import Settings

log = logging.getLogger("datasource_resolver.crm_host")

CRM_SERVICE = "crmflow.api.crm.v1.CrmService"

ChangeListener = Callable[[Sequence[ChangeEvent]], None]


@dataclass
class CrmHost:
    """What the composition root needs from the hosted CRM."""

    store: RecordStore
    bindings: list[ServiceBinding] = field(default_factory=list)
    # Started after the server is up; each returns a stop coroutine.
    background: list[Callable[[], Awaitable[Callable[[], Awaitable[None]]]]] = field(
        default_factory=list
    )
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


async def open_store(settings: Settings, *, owner: bool) -> tuple[RecordStore, list[Any]]:
    """The configured RecordStore (``crmflow.records.factory``), plus what to close at stop."""
    try:
        from crmflow.records.factory import open_record_store
    except ImportError as exc:
        if exc.name != "crmflow.records.factory" or settings.crm_mode != "embedded":
            raise
        # Until the factory lands: the embedded SQL store directly (migrated by its owner).
        from crmflow.records.sql import SqlRecordStore

        sql = await SqlRecordStore.open(settings.crm_url(), migrate=owner)
        return sql, [sql]
    store: RecordStore = await open_record_store(settings, owner=owner)
    return store, [store]


async def _close(obj: Any) -> None:
    for name in ("aclose", "close", "dispose"):
        fn = getattr(obj, name, None)
        if callable(fn):
            result = fn()
            if inspect.isawaitable(result):
                await result
            return


def crm_binding(store: RecordStore) -> ServiceBinding | None:
    """The CrmService binding, or None while ``crmflow.records.servicer`` has not landed."""
    try:
        mod = importlib.import_module("crmflow.records.servicer")
    except ImportError as exc:
        if exc.name not in ("crmflow.records.servicer",):
            raise
        log.warning("crmflow.records.servicer not available: CrmService not served")
        return None
    if hasattr(mod, "binding"):
        return mod.binding(store)  # type: ignore[no-any-return]
    from crmflow.api.crm.v1 import crm_service_pb2_grpc

    cls = getattr(mod, "CrmServicer", None) or mod.CrmService
    servicer = cls(store)
    return ServiceBinding(
        CRM_SERVICE,
        lambda server: crm_service_pb2_grpc.add_CrmServiceServicer_to_server(servicer, server),
    )


class EnrollmentDelivery:
    """Delivers change events to ``EnrollmentService.IngestEvents``, one call per tenant.

    Raises on transport failure so the outbox keeps the rows and retries (at-least-once; the
    enrollment service dedupes by event id).
    """

    def __init__(self, settings: Settings, listeners: Sequence[ChangeListener] = ()) -> None:
        self._settings = settings
        self._channel: grpc.aio.Channel | None = None
        self._listeners = list(listeners)

    def _stub(self) -> Any:
        from crmflow.api.enrollment.v1 import enrollment_service_pb2_grpc

        if self._channel is None:
            self._channel = open_channel(self._settings.enrollment_address, self._settings)
        return enrollment_service_pb2_grpc.EnrollmentServiceStub(self._channel)

    async def __call__(self, events: Sequence[ChangeEvent]) -> None:
        from crmflow.api.crm.v1 import records_pb2
        from crmflow.api.enrollment.v1 import enrollment_service_pb2
        from crmflow.model.convert import to_proto

        # Caches first: a record that changed must not be served stale while enrollment runs.
        for listener in self._listeners:
            listener(events)
        by_tenant: dict[str, list[ChangeEvent]] = defaultdict(list)
        for ev in events:
            by_tenant[ev.tenant_id].append(ev)
        stub = self._stub()
        for tenant_id, batch in by_tenant.items():
            req = enrollment_service_pb2.IngestEventsRequest(
                tenant_id=tenant_id, events=[to_proto(e, records_pb2.ChangeEvent) for e in batch]
            )
            await stub.IngestEvents(req, timeout=30)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None


def _dispatcher_factory(
    store: RecordStore, settings: Settings, delivery: EnrollmentDelivery
) -> Callable[[], Awaitable[Callable[[], Awaitable[None]]]] | None:
    """Start function for ``crmflow.records.outbox``'s dispatcher, None until it lands."""
    try:
        outbox = importlib.import_module("crmflow.records.outbox")
    except ImportError as exc:
        if exc.name != "crmflow.records.outbox":
            raise
        log.warning("crmflow.records.outbox not available: change events not dispatched")
        return None

    async def start() -> Callable[[], Awaitable[None]]:
        dispatcher = outbox.OutboxDispatcher(store, delivery)
        dispatcher.start()

        async def stop() -> None:
            await dispatcher.stop()
            await delivery.close()

        return stop

    return start


async def host_crm(
    settings: Settings,
    *,
    wrap: Callable[[RecordStore], RecordStore] = lambda s: s,
    listeners: Sequence[ChangeListener] = (),
) -> CrmHost:
    """Open the store; in embedded mode also serve CrmService and dispatch the outbox.

    ``wrap`` decorates the store every reader and writer in this process uses (the resolver's
    cache invalidation sees writes made through CrmService); the outbox reads the raw store.
    """
    embedded = settings.crm_mode == "embedded"
    raw, closeables = await open_store(settings, owner=embedded)
    store = wrap(raw)
    host = CrmHost(store=store)
    for c in closeables:
        host.closers.append(functools.partial(_close, c))
    if not embedded:
        return host
    binding = crm_binding(store)
    if binding is not None:
        host.bindings.append(binding)
    start = _dispatcher_factory(raw, settings, EnrollmentDelivery(settings, listeners))
    if start is not None:
        host.background.append(start)
    return host

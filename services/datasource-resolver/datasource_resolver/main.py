"""Composition root of the datasource-resolver service.

Builds the CRM store (and, in embedded mode, hosts the CRM: CrmService + outbox dispatcher, see
``crm_host``), the per-step resolution cache, and the DatasourceService servicer.
"""

from __future__ import annotations

from crmflow.grpc.server import RunningServer, start_server, wait_for_termination
from crmflow.settings import Settings
from datasource_resolver.cache import StepCache
from datasource_resolver.crm_host import host_crm
from datasource_resolver.record_cache import CachedReads, RecordCache
from datasource_resolver.revisions import RevisionSource
from datasource_resolver.servicer import binding as datasource_binding

SERVICE_NAME = "datasource-resolver"


async def start(settings: Settings, *, port: int | None = None) -> RunningServer:
    # Records stay cached across steps only where this process sees every write (it owns the
    # embedded store); against a platform's CRM only the short-lived step cache is used.
    records = RecordCache() if settings.crm_mode == "embedded" else None
    cache = StepCache(records=records)
    host = await host_crm(settings, wrap=cache.invalidating, listeners=[cache.on_change_events])
    try:
        reads = CachedReads(host.store, records) if records is not None else host.store
        revisions = RevisionSource(settings)
        host.closers.append(revisions.close)
        bindings = [
            datasource_binding(reads, cache, revisions=revisions),
            *host.bindings,
        ]
        running = await start_server(
            bindings,
            settings=settings,
            port=settings.port_for(SERVICE_NAME) if port is None else port,
        )
    except BaseException:
        for close in reversed(host.closers):
            await close()
        raise
    running.on_stop.extend(host.closers)
    for begin in host.background:
        running.on_stop.append(await begin())
    return running


async def run(settings: Settings) -> None:
    running = await start(settings)
    await wait_for_termination(running, grace=10.0)

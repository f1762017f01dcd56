"""Choosing the CRM adapter from configuration (the one place that decides).

- ``owner=True`` and ``crm_mode == "embedded"``: this process owns the embedded SQL store
  (the datasource-resolver): open ``settings.crm_url()`` and migrate it to head.
- otherwise: the gRPC adapter, pointed at ``settings.crm_address`` (a platform's CRM) or, in
  embedded mode, at the datasource-resolver that serves the embedded store.
"""

from __future__ import annotations

from crmflow.records.port import RecordStore
from crmflow.settings import ConfigurationError, Settings


async def open_record_store(settings: Settings, *, owner: bool = False) -> RecordStore:
    if owner and settings.crm_mode == "embedded":
        from crmflow.records.sql import SqlRecordStore

        return await SqlRecordStore.open(settings.crm_url(), migrate=True)
    from crmflow.records.grpc_adapter import GrpcRecordStore

    address = settings.crm_address
    if settings.crm_mode == "grpc" and not address:
        raise ConfigurationError(
            "crmflow: bad configuration: CRMFLOW_CRM_ADDRESS: required with CRMFLOW_CRM_MODE=grpc"
        )
    return GrpcRecordStore.connect(address or settings.datasource_resolver_address, settings)

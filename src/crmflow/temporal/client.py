"""Connect to Temporal from settings (Temporal's own TEMPORAL_* variables)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import TLSConfig

from crmflow.settings import TemporalSettings
from crmflow.temporal.plugin import CrmflowPlugin


def tls_config(s: TemporalSettings) -> TLSConfig | bool:
    if not (s.tls or s.tls_client_cert_path or s.tls_server_ca_cert_path):
        return False
    return TLSConfig(
        server_root_ca_cert=s.tls_server_ca_cert_path.read_bytes()
        if s.tls_server_ca_cert_path
        else None,
        client_cert=s.tls_client_cert_path.read_bytes() if s.tls_client_cert_path else None,
        client_private_key=s.tls_client_key_path.read_bytes() if s.tls_client_key_path else None,
        domain=s.tls_server_name,
    )


async def connect(s: TemporalSettings) -> Client:
    return await Client.connect(
        s.address,
        namespace=s.namespace,
        api_key=s.api_key,
        tls=tls_config(s),
        plugins=[CrmflowPlugin()],
    )

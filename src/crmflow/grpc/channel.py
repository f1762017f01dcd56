"""Client channels to other crmflow services (and to a platform's CRM)."""

from __future__ import annotations

from pathlib import Path

import grpc

from crmflow.settings import Settings


def open_channel(address: str, settings: Settings | None = None) -> grpc.aio.Channel:
    """An aio channel; TLS when ``CRMFLOW_GRPC_TLS_CA_PATH`` is set (mTLS with a client cert)."""
    options = [("grpc.max_receive_message_length", 16 * 1024 * 1024)]
    if settings is None or settings.grpc_tls_ca_path is None:
        return grpc.aio.insecure_channel(address, options=options)
    ca = Path(settings.grpc_tls_ca_path).read_bytes()
    key = settings.grpc_tls_key_path.read_bytes() if settings.grpc_tls_key_path else None
    cert = settings.grpc_tls_cert_path.read_bytes() if settings.grpc_tls_cert_path else None
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    return grpc.aio.secure_channel(address, creds, options=options)

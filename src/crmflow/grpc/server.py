"""The one way every crmflow service runs its gRPC server.

grpc.aio server + the library health service + server reflection + our interceptor, optional
TLS/mTLS, and graceful shutdown: on SIGTERM health goes NOT_SERVING first (so load balancers and
Kubernetes stop routing), then ``stop(grace)`` lets in-flight rpcs finish.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from crmflow.grpc.interceptors import ServiceInterceptor
from crmflow.settings import ConfigurationError, Settings

log = logging.getLogger("crmflow.grpc.server")


@dataclass(frozen=True)
class ServiceBinding:
    """A servicer ready to add: its full proto name (for health/reflection) and the adder."""

    full_name: str
    add: Callable[[grpc.aio.Server], None]


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: list[str]
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # The plaintext health-only server (settings.health_port), stopped with the main one.
    health_server: grpc.aio.Server | None = None

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in [*self.service_names, ""]:
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        await self.set_serving(False)
        await self.server.stop(grace)
        if self.health_server is not None:
            await self.health_server.stop(0)
        for hook in reversed(self.on_stop):
            await hook()


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if settings.grpc_tls_cert_path is None:
        return None
    if settings.grpc_tls_key_path is None:
        raise ConfigurationError(
            "crmflow: bad configuration: CRMFLOW_GRPC_TLS_KEY_PATH: required with a cert"
        )
    key = settings.grpc_tls_key_path.read_bytes()
    cert = settings.grpc_tls_cert_path.read_bytes()
    client_ca = (
        settings.grpc_tls_client_ca_path.read_bytes() if settings.grpc_tls_client_ca_path else None
    )
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


async def start_server(
    bindings: Sequence[ServiceBinding],
    *,
    settings: Settings,
    host: str | None = None,
    port: int = 0,
) -> RunningServer:
    """Start a server on ``host:port`` (port 0 picks a free one; tests use that)."""
    server = grpc.aio.server(
        interceptors=[ServiceInterceptor()],
        options=[
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.so_reuseport", 0),  # a taken port must fail loudly, not be shared
        ],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [b.full_name for b in bindings]
    for b in bindings:
        b.add(server)
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    address = f"{host or settings.bind_host}:{port}"
    creds = _credentials(settings)
    try:
        bound = (
            server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
        )
    except RuntimeError as exc:
        raise ConfigurationError(f"crmflow: cannot listen on {address}: {exc}") from None
    if bound == 0:
        raise ConfigurationError(f"crmflow: cannot listen on {address}: port in use")
    await server.start()
    running = RunningServer(server=server, port=bound, health=health_servicer, service_names=names)
    if settings.health_port is not None:
        try:
            running.health_server = await _start_health_server(
                health_servicer, f"{host or settings.bind_host}:{settings.health_port}"
            )
        except ConfigurationError:
            await server.stop(0)
            raise
    await running.set_serving(True)
    log.info("serving %s on %s:%d", ", ".join(names), host or settings.bind_host, bound)
    return running


async def _start_health_server(
    health_servicer: health.aio.HealthServicer, address: str
) -> grpc.aio.Server:
    """Serve only grpc.health.v1, in plaintext, sharing the main server's status.

    With TLS on the main port, Kubernetes' native gRPC probes (which cannot do TLS) use this
    port instead; it exposes nothing but the serving status.
    """
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ConfigurationError(f"crmflow: cannot listen on {address}: {exc}") from None
    if bound == 0:
        raise ConfigurationError(f"crmflow: cannot listen on {address}: port in use")
    await server.start()
    return server


def install_stop_signals() -> asyncio.Event:
    """An event set by SIGTERM/SIGINT. Install it *before* starting, so a signal that arrives
    between SERVING and the wait still shuts down gracefully instead of killing the process."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def wait_for_termination(
    running: RunningServer, grace: float, stop: asyncio.Event | None = None
) -> None:
    """Block until ``stop`` is set (default: SIGTERM/SIGINT), then shut down gracefully."""
    stop = stop or install_stop_signals()
    waiter = asyncio.create_task(running.server.wait_for_termination())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    log.info("shutting down (grace %.1fs)", grace)
    await running.stop(grace)
    waiter.cancel()
    stopper.cancel()

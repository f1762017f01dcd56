"""The plaintext health-only port the chart's probes use when gRPC TLS is on.

Kubernetes' native gRPC probes cannot speak TLS, so with grpcTls.enabled the chart sets
CRMFLOW_HEALTH_PORT and points every probe there. These tests run a real server: the main port
is TLS (a throwaway certificate from openssl), the health port answers in plaintext with the
main server's status, and it exposes nothing else.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crmflow.grpc.server import start_server
from crmflow.settings import ConfigurationError, Settings
from tests.helpers import free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    key, cert = d / "tls.key", d / "tls.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def _health(address: str, creds: grpc.ChannelCredentials | None = None) -> str:
    channel = (
        grpc.aio.secure_channel(address, creds) if creds else grpc.aio.insecure_channel(address)
    )
    async with channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def test_health_port_is_plaintext_and_follows_the_main_status(tls_files):
    cert, key = tls_files
    health_port = free_port()
    settings = Settings(grpc_tls_cert_path=cert, grpc_tls_key_path=key, health_port=health_port)
    running = await start_server([], settings=settings, port=0)
    try:
        # The main port is TLS-only: a plaintext probe there fails, as the kubelet's would.
        with pytest.raises(grpc.aio.AioRpcError):
            await _health(f"127.0.0.1:{running.port}")
        tls = grpc.ssl_channel_credentials(cert.read_bytes())
        assert await _health(f"localhost:{running.port}", tls) == "SERVING"
        # The health port answers in plaintext, with the same status.
        assert await _health(f"127.0.0.1:{health_port}") == "SERVING"
        await running.set_serving(False)
        assert await _health(f"127.0.0.1:{health_port}") == "NOT_SERVING"
        # Nothing but health: reflection (served on the main port) is not there.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{health_port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await channel.unary_unary(
                    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
                )(b"", timeout=5)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await running.stop(0)
    # Stopping the service stops the health port too.
    with pytest.raises(grpc.aio.AioRpcError):
        await _health(f"127.0.0.1:{health_port}")


async def test_taken_health_port_is_a_configuration_error():
    taken = free_port()
    blocker = grpc.aio.server()
    blocker.add_insecure_port(f"127.0.0.1:{taken}")
    await blocker.start()
    try:
        with pytest.raises(ConfigurationError, match=f"cannot listen on 127.0.0.1:{taken}"):
            await start_server([], settings=Settings(health_port=taken), port=0)
    finally:
        await blocker.stop(0)


def test_no_health_port_by_default():
    assert Settings().health_port is None

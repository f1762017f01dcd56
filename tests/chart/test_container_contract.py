"""The chart's environment and commands against the real code (no cluster, no image).

The chart and the code meet at environment variable names and command lines. These tests take
the rendered pods' environment (ConfigMap + env, secretKeyRefs resolved to test values) and
(1) load it into crmflow's Settings exactly as a container would, and (2) run the hook Jobs'
and a Deployment's commands as processes against the test PostgreSQL and a Temporal dev server.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crmflow.settings import Settings, load_settings
from tests.chart.conftest import Render, by_kind, container
from tests.helpers import create_pg_database, drop_pg_database, free_port

CRMFLOW = shutil.which("crmflow") or str(Path(sys.executable).with_name("crmflow"))


def pod_environment(
    docs: list[dict[str, Any]], workload: dict[str, Any], secrets: dict[tuple[str, str], str]
) -> dict[str, str]:
    """What the container's process sees: envFrom ConfigMap, then env (which wins)."""
    c = container(workload)
    configmaps = by_kind(docs, "ConfigMap")
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secrets[(ref["name"], ref["key"])]
    return env


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("CRMFLOW_", "TEMPORAL_", "OTEL_")):
            monkeypatch.delenv(name)
    return monkeypatch


FAKE_SECRETS = {
    ("crmflow-db", "url"): "postgresql://crmflow:pw@db:5432/crmflow",
    ("crmflow-db", "crm-url"): "postgresql://crmflow:pw@db:5432/crmflow_crm",
    ("crmflow-database", "database-url"): "postgresql://crmflow:pw@db:5432/crmflow",
    ("crmflow-database", "crm-database-url"): "postgresql://crmflow:pw@db:5432/crmflow_crm",
    ("crmflow-secret-store", "key"): "k" * 32,
    ("crmflow-secret-store", "secret-store-key"): "k" * 32,
    ("temporal-api-key", "api-key"): "tmprl-key",
    ("crmflow-webhooks", "signing-key"): "whsec",
    ("editor-session", "key"): "session",
}


@pytest.mark.parametrize("value_set", ["defaults", "production", "minimal", "everything"])
def test_every_pod_environment_loads_into_settings(
    render: Render, clean_environ: pytest.MonkeyPatch, value_set: str
):
    docs = render(None, value_set)
    workloads = [d for d in docs if d["kind"] in ("Deployment", "Job")]
    assert workloads
    for workload in workloads:
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        env = pod_environment(docs, workload, FAKE_SECRETS)
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            settings = load_settings(Settings)  # a bad value would exit with its one-line reason
        assert settings.bind_host == "0.0.0.0", where
        assert settings.data_dir == Path("/tmp/crmflow"), where
        assert settings.database_url and settings.database_url.startswith("postgresql://"), where
        assert settings.temporal.address == env["TEMPORAL_ADDRESS"], where
        assert settings.temporal.namespace == env["TEMPORAL_NAMESPACE"], where
        assert settings.temporal.task_queue == env["CRMFLOW_TASK_QUEUE"], where
        assert settings.log_format == "json", where
        if "CRMFLOW_PORT" in env:
            assert settings.port == int(env["CRMFLOW_PORT"]), where
        if value_set in ("production", "everything"):
            assert settings.temporal.tls is True, where
            assert settings.grpc_tls_cert_path and settings.grpc_tls_client_ca_path, where
            assert settings.health_port is not None, where
        if value_set == "everything":
            assert settings.crm_mode == "grpc" and settings.crm_address, where
            assert settings.temporal.api_key == "tmprl-key", where
            assert settings.webhook_allow_private == ["10.20.0.0/16"], where
            assert settings.temporal.custom_code_task_queue == "crmflow-code", where


# ---- the commands, as processes ------------------------------------------------------------


@pytest.fixture(scope="module")
def bare_temporal() -> Any:
    """A dev server WITHOUT crmflow's search attributes: the hook Job must add them."""
    from crmflow.temporal.devserver import temporal_cli

    port, ui = free_port(), free_port()
    proc = subprocess.Popen(
        [
            temporal_cli(),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--ui-port",
            str(ui),
            "--log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def databases() -> Any:
    pytest.importorskip("psycopg")
    try:
        urls = create_pg_database(), create_pg_database()
    except Exception as exc:  # no PostgreSQL on this machine
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    yield urls
    for url in urls:
        drop_pg_database(url)


def run(cmd: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CRMFLOW_", "TEMPORAL_"))}
    return subprocess.run(cmd, env={**base, **env}, capture_output=True, text=True, timeout=timeout)


def job_command(job: dict[str, Any]) -> list[str]:
    c = container(job)
    return [CRMFLOW, *c["args"]]  # the image's ENTRYPOINT is `crmflow`


def wait_until(check: Any, *, timeout: float, interval: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not reached within {timeout}s"
        time.sleep(interval)


def health(port: int) -> str | None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        try:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError:
            return None
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


@pytest.mark.postgres
@pytest.mark.temporal
@pytest.mark.slow
def test_hook_jobs_and_a_service_run_with_the_rendered_environment(
    render: Render, bare_temporal: str, databases: tuple[str, str], tmp_path: Path
):
    services_db, crm_db = databases
    docs = render({"temporal": {"address": bare_temporal, "namespace": "default"}})
    secrets = {
        ("crmflow-database", "database-url"): services_db,
        ("crmflow-database", "crm-database-url"): crm_db,
    }
    jobs = by_kind(docs, "Job")
    local = {"CRMFLOW_DATA_DIR": str(tmp_path)}  # /tmp/crmflow is the pod's emptyDir

    migrate = jobs["crmflow-migrate"]
    env = {**pod_environment(docs, migrate, secrets), **local}
    first = run(job_command(migrate), env)
    assert first.returncode == 0, first.stderr
    assert "crm" in first.stdout
    again = run(job_command(migrate), env)  # pre-upgrade runs it on every upgrade
    assert again.returncode == 0, again.stderr

    attrs = jobs["crmflow-search-attributes"]
    env = {**pod_environment(docs, attrs, secrets), **local}
    results: list[subprocess.CompletedProcess] = []

    def registered() -> bool:
        results.append(run(job_command(attrs), env))
        return results[-1].returncode == 0

    # The dev server takes a moment to accept connections after it starts.
    try:
        wait_until(registered, timeout=60, interval=1)
    except AssertionError:
        pytest.fail(f"search-attribute registration failed: {results[-1].stderr}")
    assert "CrmflowTenantId" in results[-1].stdout and "CrmflowRevision" in results[-1].stdout
    repeat = run(job_command(attrs), env)
    assert repeat.returncode == 0 and "none" in repeat.stdout, repeat.stdout + repeat.stderr

    # editor-api as its Deployment starts it, on a free port instead of the pod's 50051.
    editor = by_kind(docs, "Deployment")["crmflow-editor-api"]
    port = free_port()
    env = {**pod_environment(docs, editor, secrets), **local, "CRMFLOW_PORT": str(port)}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CRMFLOW_", "TEMPORAL_"))}
    proc = subprocess.Popen(
        [CRMFLOW, *container(editor)["args"]],
        env={**base, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def serving() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"editor-api exited: {proc.stdout.read() if proc.stdout else ''}")
            return health(port) == "SERVING"

        wait_until(serving, timeout=60, interval=0.5)
        proc.send_signal(signal.SIGTERM)  # what the kubelet does on a rollout
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

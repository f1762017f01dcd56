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
import socket
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
        if workload["kind"] == "Deployment" or where.endswith("-migrate"):
            assert settings.database_url, where
            assert settings.database_url.startswith("postgresql://"), where
        assert settings.temporal.address == env["TEMPORAL_ADDRESS"], where
        assert settings.temporal.namespace == env["TEMPORAL_NAMESPACE"], where
        assert settings.temporal.task_queue == env["CRMFLOW_TASK_QUEUE"], where
        assert settings.log_format == "json", where
        if "CRMFLOW_PORT" in env:
            assert settings.port == int(env["CRMFLOW_PORT"]), where
        if value_set in ("production", "everything"):
            assert settings.temporal.tls is True, where
            if workload["kind"] == "Deployment":
                assert settings.grpc_tls_cert_path and settings.grpc_tls_client_ca_path, where
                assert settings.health_port is not None, where
        if value_set == "everything":
            assert settings.crm_mode == "grpc" and settings.crm_address, where
            if not where.endswith("-migrate"):
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
    if os.environ.get("CRMFLOW_TEST_POSTGRES", "1") == "0":  # as tests/conftest.py
        pytest.skip("PostgreSQL disabled (CRMFLOW_TEST_POSTGRES=0)")
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


@pytest.fixture(scope="module")
def release(render: Render, databases: tuple[str, str], bare_temporal: str) -> Any:
    """The rendered chart pointed at the test Temporal, with its secrets resolved."""
    services_db, crm_db = databases
    docs = render({"temporal": {"address": bare_temporal, "namespace": "default"}})
    secrets = {
        ("crmflow-database", "database-url"): services_db,
        ("crmflow-database", "crm-database-url"): crm_db,
    }
    return docs, secrets


def run_like_job(job: dict[str, Any], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run a Job's command with the Job's retry budget (1 + backoffLimit attempts).

    Retrying is part of the contract: a Temporal client process may crash while the
    interpreter exits after its work is done (temporalio/sdk-python#300), and Kubernetes
    retries a failed Job pod the same way.
    """
    attempts = [run(job_command(job), env)]
    while attempts[-1].returncode != 0 and len(attempts) <= job["spec"]["backoffLimit"]:
        attempts.append(run(job_command(job), env))
    assert attempts[-1].returncode == 0, [(a.returncode, a.stderr[-1500:]) for a in attempts]
    return attempts[-1]


def tcp_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def installed(release: Any, bare_temporal: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The two pre-install hook Jobs, run as the Jobs would run them (and run twice, as
    pre-upgrade does on every upgrade)."""
    docs, secrets = release
    jobs = by_kind(docs, "Job")
    local = {"CRMFLOW_DATA_DIR": str(tmp_path_factory.mktemp("data"))}

    migrate = jobs["crmflow-migrate"]
    env = {**pod_environment(docs, migrate, secrets), **local}
    first = run_like_job(migrate, env)
    run_like_job(migrate, env)

    attrs = jobs["crmflow-search-attributes"]
    env = {**pod_environment(docs, attrs, secrets), **local}
    wait_until(lambda: tcp_open(bare_temporal), timeout=60, interval=0.5)
    added = run_like_job(attrs, env)
    repeat = run_like_job(attrs, env)
    return first, added, repeat


@pytest.mark.postgres
@pytest.mark.temporal
@pytest.mark.slow
def test_hook_jobs_migrate_and_register_idempotently(installed: Any, bare_temporal: str):
    from crmflow.temporal.devserver import temporal_cli

    migrated, _added, repeat = installed
    assert "editor" in migrated.stdout and "crm" in migrated.stdout
    # (An attempt that crashed on exit may have added them already: ask the server.)
    listed = subprocess.run(
        [
            temporal_cli(),
            "operator",
            "search-attribute",
            "list",
            "--address",
            bare_temporal,
            "--namespace",
            "default",
            "-o",
            "json",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    for name in (
        "CrmflowTenantId",
        "CrmflowWorkflowId",
        "CrmflowRevision",
        "CrmflowObjectType",
        "CrmflowRecordId",
        "CrmflowStatus",
    ):
        assert name in listed
    assert "none" in repeat.stdout, repeat.stdout + repeat.stderr


# Known defects outside the chart, recognised by their exact symptom so that any other failure
# still fails. Remove an entry when its fix lands (the test then passes without it).
KNOWN_DEFECTS = {
    "PyGILState_Release": (
        "a process that used a Temporal client aborts while the interpreter exits after a "
        "clean shutdown (temporalio/sdk-python#300); `crmflow serve` should os._exit() once "
        "shut down"
    ),
}


def xfail_if_known(output: str) -> None:
    for symptom, reason in KNOWN_DEFECTS.items():
        if symptom in output:
            pytest.xfail(reason)


@pytest.mark.postgres
@pytest.mark.temporal
@pytest.mark.slow
@pytest.mark.parametrize(
    "component",
    ["editor-api", "enrollment", "datasource-resolver", "executor", "executor-custom-code"],
)
def test_deployment_command_serves_and_stops_cleanly(
    release: Any, installed: Any, component: str, tmp_path: Path
):
    """The Deployment's args + environment give a process that reports SERVING (for the
    executors: once the Temporal worker polls, which readiness relies on) and exits 0 on
    SIGTERM within the pod's grace period. Free ports replace the pod's fixed one."""
    docs, secrets = release
    workload = by_kind(docs, "Deployment")[f"crmflow-{component}"]
    grace = workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    port = free_port()
    env = {
        **pod_environment(docs, workload, secrets),
        "CRMFLOW_DATA_DIR": str(tmp_path),
        "CRMFLOW_PORT": str(port),
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CRMFLOW_", "TEMPORAL_"))}
    log_path = tmp_path / "out.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [CRMFLOW, *container(workload)["args"]],
            env={**base, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def serving() -> bool:
            if proc.poll() is not None:
                xfail_if_known(log_path.read_text())
                pytest.fail(f"{component} exited {proc.returncode}: {log_path.read_text()[-3000:]}")
            return health(port) == "SERVING"

        wait_until(serving, timeout=60, interval=0.5)
        # Health turns SERVING a moment before `crmflow serve` installs its SIGTERM handler;
        # a rollout never terminates a pod that fast, so let it settle first.
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)  # what the kubelet does on a rollout
        code = proc.wait(grace)  # the kubelet SIGKILLs after the grace period
        if code != 0:
            xfail_if_known(log_path.read_text())
        assert code == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""Behaviour of the Helm chart, checked on the rendered manifests (helm template)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.chart.conftest import (
    CHART,
    ROOT,
    HelmError,
    Render,
    by_kind,
    container,
    deployment,
    env_of,
    pod_specs,
)

COMPONENTS = {
    "editor-api": 50051,
    "enrollment": 50052,
    "datasource-resolver": 50054,
    "executor": 50053,
    "executor-custom-code": 50053,
}
SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|API_KEY|DATABASE_URL")
FAKE_SECRET = "hunter2-do-not-leak"


# ---- workloads and probes --------------------------------------------------------------------


def test_one_deployment_per_component_running_its_service(render: Render):
    docs = render()
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {f"crmflow-{c}" for c in COMPONENTS}
    assert container(deployment(docs, "editor-api"))["args"] == ["serve", "editor-api"]
    assert container(deployment(docs, "executor"))["args"] == ["serve", "executor"]
    assert container(deployment(docs, "executor-custom-code"))["args"] == [
        "serve",
        "executor",
        "--role",
        "custom-code",
    ]
    for name, port in COMPONENTS.items():
        c = container(deployment(docs, name))
        assert env_of(c)["CRMFLOW_PORT"]["value"] == str(port)
        assert c["ports"][0] == {"name": "grpc", "containerPort": port, "protocol": "TCP"}


@pytest.mark.parametrize("component", list(COMPONENTS))
def test_probes_are_native_grpc_on_the_service_port(render: Render, component: str):
    c = container(deployment(render(), component))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"] == {"port": COMPONENTS[component]}, probe
        assert not {"exec", "httpGet", "tcpSocket"} & set(c[probe])


def test_with_grpc_tls_probes_use_the_plaintext_health_port(render: Render):
    docs = render({"grpcTls": {"enabled": True, "existingSecret": "tls", "healthPort": 50070}})
    config = by_kind(docs, "ConfigMap")["crmflow"]["data"]
    assert config["CRMFLOW_HEALTH_PORT"] == "50070"
    assert config["CRMFLOW_GRPC_TLS_CERT_PATH"] == "/etc/crmflow/grpc-tls/tls.crt"
    assert "CRMFLOW_GRPC_TLS_CLIENT_CA_PATH" not in config  # mtls off
    for name in COMPONENTS:
        c = container(deployment(docs, name))
        assert c["readinessProbe"]["grpc"] == {"port": 50070}
        assert {"name": "health", "containerPort": 50070, "protocol": "TCP"} in c["ports"]
        assert {"name": "grpc-tls", "mountPath": "/etc/crmflow/grpc-tls", "readOnly": True} in c[
            "volumeMounts"
        ]
    mtls = render({"grpcTls": {"enabled": True, "existingSecret": "tls", "mtls": True}})
    assert "CRMFLOW_GRPC_TLS_CLIENT_CA_PATH" in by_kind(mtls, "ConfigMap")["crmflow"]["data"]


def test_services_for_rpc_components_but_not_for_the_custom_code_worker(render: Render):
    services = by_kind(render(), "Service")
    assert set(services) == {
        "crmflow-editor-api",
        "crmflow-enrollment",
        "crmflow-datasource-resolver",
        "crmflow-executor",
    }
    for svc in services.values():
        (port,) = svc["spec"]["ports"]
        assert port["targetPort"] == "grpc" and port["appProtocol"] == "grpc"
    no_executor_svc = by_kind(render({"executor": {"service": {"enabled": False}}}), "Service")
    assert "crmflow-executor" not in no_executor_svc


def test_disabled_component_renders_nothing(render: Render):
    docs = render({"executorCustomCode": {"enabled": False}})
    names = [d["metadata"]["name"] for d in docs]
    assert not [n for n in names if "custom-code" in n]


# ---- security ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", ["defaults", "production", "everything"])
def test_every_pod_runs_restricted(render: Render, value_set: str):
    specs = pod_specs(render(None, value_set))
    assert len(specs) >= 7  # 5 deployments, 2 hook jobs (+ test pod)
    for where, pod in specs.items():
        assert pod["automountServiceAccountToken"] is False, where
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert "privileged" not in sc, where
            # The read-only root filesystem leaves /tmp (an emptyDir) as the writable place.
            assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"], where
        assert {
            "name": "tmp",
            "emptyDir": {"sizeLimit": pod["volumes"][0]["emptyDir"]["sizeLimit"]},
        } in pod["volumes"]
    for sa in by_kind(render(None, value_set), "ServiceAccount").values():
        assert sa["automountServiceAccountToken"] is False


@pytest.mark.parametrize("value_set", ["defaults", "production", "everything"])
def test_secrets_only_by_reference(render: Render, value_set: str):
    docs = render(None, value_set)
    assert not by_kind(docs, "Secret"), "the chart never creates Secrets"
    (config,) = by_kind(docs, "ConfigMap").values()
    assert not [k for k in config["data"] if SECRETISH.search(k)]
    for where, pod in pod_specs(docs).items():
        for c in pod["containers"]:
            for e in c.get("env", []):
                if SECRETISH.search(e["name"]):
                    assert "value" not in e, (where, e)
                    assert set(e["valueFrom"]) == {"secretKeyRef"}, (where, e)


def test_secret_references_reach_the_pods(render: Render):
    docs = render(None, "everything")
    c = container(by_kind(docs, "Deployment")["crmflow-all-editor-api"])
    env = env_of(c)
    assert env["CRMFLOW_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "crmflow-db",
        "key": "url",
    }
    assert env["TEMPORAL_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "temporal-api-key",
        "key": "api-key",
    }
    assert (
        env["CRMFLOW_SECRET_STORE_KEY"]["valueFrom"]["secretKeyRef"]["name"]
        == "crmflow-secret-store"
    )
    assert env["CRMFLOW_WEBHOOK_SIGNING_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "signing-key"
    # Per-component secretEnv lands on that component only.
    assert "CRMFLOW_EDITOR_SESSION_KEY" in env
    other = env_of(container(by_kind(docs, "Deployment")["crmflow-all-enrollment"]))
    assert "CRMFLOW_EDITOR_SESSION_KEY" not in other


def test_crm_database_url_only_where_the_crm_store_lives(render: Render):
    docs = render()
    for name in COMPONENTS:
        has = "CRMFLOW_CRM_DATABASE_URL" in env_of(container(deployment(docs, name)))
        assert has == (name == "datasource-resolver"), name
    migrate = by_kind(docs, "Job")["crmflow-migrate"]
    assert "CRMFLOW_CRM_DATABASE_URL" in env_of(container(migrate))
    # A platform CRM over gRPC: no CRM database anywhere, the address instead.
    grpc_crm = render({"crm": {"mode": "grpc", "address": "crm.example:9090"}})
    assert (
        by_kind(grpc_crm, "ConfigMap")["crmflow"]["data"]["CRMFLOW_CRM_ADDRESS"]
        == "crm.example:9090"
    )
    for where, pod in pod_specs(grpc_crm).items():
        assert "CRMFLOW_CRM_DATABASE_URL" not in env_of(pod["containers"][0]), where


@pytest.mark.parametrize(
    "values",
    [
        {"config": {"extraEnv": {"CRMFLOW_SECRET_STORE_KEY": FAKE_SECRET}}},
        {"editorApi": {"env": {"CRMFLOW_DATABASE_URL": f"postgresql://u:{FAKE_SECRET}@db/x"}}},
        {"executor": {"env": {"TEMPORAL_API_KEY": FAKE_SECRET}}},
        {"secrets": {"extraEnv": [{"name": "X_TOKEN", "value": FAKE_SECRET}]}},
        {"database": {"existingSecret": "db", "url": f"postgresql://u:{FAKE_SECRET}@db/x"}},
        {"temporal": {"apiKey": {"value": FAKE_SECRET}}},
    ],
    ids=[
        "config.extraEnv",
        "component env",
        "temporal key in env",
        "secretEnv value",
        "database url",
        "temporal api key",
    ],
)
def test_a_secret_value_in_values_is_refused(render: Render, values: dict):
    with pytest.raises(HelmError) as err:
        render(values)
    assert "values don't meet the specifications of the schema" in str(err.value)
    assert FAKE_SECRET not in str(err.value)


# ---- configuration -----------------------------------------------------------------------------


def test_temporal_settings_use_temporals_own_variable_names(render: Render):
    docs = render(None, "production")
    data = by_kind(docs, "ConfigMap")["crmflow"]["data"]
    assert data["TEMPORAL_ADDRESS"] == "temporal-frontend.temporal.svc.cluster.local:7233"
    assert data["TEMPORAL_NAMESPACE"] == "crmflow"
    assert data["TEMPORAL_TLS"] == "true"
    assert data["TEMPORAL_TLS_CLIENT_CERT_PATH"] == "/etc/crmflow/temporal-tls/tls.crt"
    assert data["TEMPORAL_TLS_CLIENT_KEY_PATH"] == "/etc/crmflow/temporal-tls/tls.key"
    assert data["TEMPORAL_TLS_SERVER_CA_CERT_PATH"] == "/etc/crmflow/temporal-tls/ca.crt"
    assert data["TEMPORAL_TLS_SERVER_NAME"] == "temporal-frontend.temporal.svc.cluster.local"
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://otel-collector")
    assert data["CRMFLOW_LOG_LEVEL"] == "INFO" and data["CRMFLOW_LOG_FORMAT"] == "json"
    assert (
        data["CRMFLOW_ENROLLMENT_ADDRESS"] == "crmflow-enrollment.crmflow.svc.cluster.local:50052"
    )
    ex = container(deployment(docs, "executor"))
    assert ex["envFrom"] == [{"configMapRef": {"name": "crmflow"}}]
    assert {
        "name": "temporal-tls",
        "mountPath": "/etc/crmflow/temporal-tls",
        "readOnly": True,
    } in ex["volumeMounts"]


def test_config_change_rolls_the_pods(render: Render):
    def checksums(values: dict) -> set[str]:
        return {
            d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for d in by_kind(render(values), "Deployment").values()
        }

    base = checksums({})
    assert len(base) == 1
    assert checksums({}) == base
    assert checksums({"config": {"logLevel": "DEBUG"}}) != base
    assert checksums({"temporal": {"namespace": "other"}}) != base
    # A per-component override is in the pod template itself, no checksum needed.
    assert checksums({"editorApi": {"replicas": 4}}) == base


def test_per_component_overrides_land_on_that_deployment_only(render: Render):
    docs = render(
        {
            "editorApi": {"replicas": 7, "logLevel": "DEBUG"},
            "enrollment": {"resources": {"requests": {"cpu": "1"}, "limits": {"memory": "3Gi"}}},
            "executor": {"env": {"CRMFLOW_EXTRA_FLAG": "on"}, "terminationGracePeriodSeconds": 300},
            "datasourceResolver": {"nodeSelector": {"pool": "io"}},
            "executorCustomCode": {
                "tolerations": [{"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}],
                "podLabels": {"sandbox": "true"},
            },
        }
    )
    dep = {name: deployment(docs, name) for name in COMPONENTS}
    assert {n: d["spec"]["replicas"] for n, d in dep.items()} == {
        "editor-api": 7,
        "enrollment": 2,
        "datasource-resolver": 2,
        "executor": 2,
        "executor-custom-code": 1,
    }
    assert env_of(container(dep["editor-api"]))["CRMFLOW_LOG_LEVEL"]["value"] == "DEBUG"
    assert [n for n, d in dep.items() if "CRMFLOW_LOG_LEVEL" in env_of(container(d))] == [
        "editor-api"
    ]
    assert container(dep["enrollment"])["resources"] == {
        "requests": {"cpu": "1", "memory": "256Mi"},
        "limits": {"memory": "3Gi"},
    }
    assert [
        n for n, d in dep.items() if container(d)["resources"]["limits"]["memory"] == "3Gi"
    ] == ["enrollment"]
    assert [n for n, d in dep.items() if "CRMFLOW_EXTRA_FLAG" in env_of(container(d))] == [
        "executor"
    ]
    assert dep["executor"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 300
    assert [n for n, d in dep.items() if d["spec"]["template"]["spec"].get("nodeSelector")] == [
        "datasource-resolver"
    ]
    assert [n for n, d in dep.items() if d["spec"]["template"]["spec"].get("tolerations")] == [
        "executor-custom-code"
    ]
    assert (
        dep["executor-custom-code"]["spec"]["template"]["metadata"]["labels"]["sandbox"] == "true"
    )


def test_hpa_and_pdb_per_component(render: Render):
    docs = render(
        {
            "enrollment": {
                "autoscaling": {
                    "enabled": True,
                    "minReplicas": 3,
                    "maxReplicas": 9,
                    "targetCPUUtilizationPercentage": 60,
                    "targetMemoryUtilizationPercentage": 0,
                }
            },
            "editorApi": {"pdb": {"enabled": False}},
        }
    )
    (hpa,) = by_kind(docs, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "crmflow-enrollment"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 9)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 60},
            },
        }
    ]
    # The HPA owns the replica count: the Deployment must not fight it on every upgrade.
    assert "replicas" not in deployment(docs, "enrollment")["spec"]
    assert deployment(docs, "editor-api")["spec"]["replicas"] == 2
    pdbs = by_kind(docs, "PodDisruptionBudget")
    assert "crmflow-editor-api" not in pdbs
    assert (
        pdbs["crmflow-enrollment"]["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        == "enrollment"
    )


def test_keda_scales_the_workers_on_their_task_queues(render: Render):
    docs = render(None, "everything")
    scaled = by_kind(docs, "ScaledObject")
    assert set(scaled) == {"crmflow-all-executor", "crmflow-all-executor-custom-code"}
    trig = scaled["crmflow-all-executor"]["spec"]["triggers"][0]
    assert trig["type"] == "temporal"
    assert trig["metadata"]["taskQueue"] == "crmflow-exec"
    assert trig["metadata"]["namespace"] == "crmflow.a1b2c"
    assert trig["metadata"]["endpoint"] == "crmflow.a1b2c.tmprl.cloud:7233"
    assert all(isinstance(v, str) for v in trig["metadata"].values())  # KEDA wants strings
    assert (
        scaled["crmflow-all-executor-custom-code"]["spec"]["triggers"][0]["metadata"]["taskQueue"]
        == "crmflow-code"
    )
    assert scaled["crmflow-all-executor-custom-code"]["spec"]["minReplicaCount"] == 0
    (auth,) = by_kind(docs, "TriggerAuthentication").values()
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"cert", "key", "apiKey"}
    assert trig["authenticationRef"]["name"] == auth["metadata"]["name"]
    for name in scaled:
        assert "replicas" not in by_kind(docs, "Deployment")[name]["spec"]
    assert not by_kind(render(), "ScaledObject")


def test_executor_readiness_is_its_temporal_connection(render: Render):
    """The executor's health reports SERVING only while its worker polls: readiness uses it,
    liveness tolerates a Temporal outage far longer than readiness does."""
    for name in ("executor", "executor-custom-code"):
        c = container(deployment(render(), name))
        assert c["readinessProbe"]["grpc"] == {"port": 50053}
        live, ready = c["livenessProbe"], c["readinessProbe"]
        assert (
            live["periodSeconds"] * live["failureThreshold"]
            >= 10 * ready["periodSeconds"] * ready["failureThreshold"]
        )


# ---- hooks -----------------------------------------------------------------------------------


def test_migrations_and_search_attributes_run_as_pre_install_upgrade_hooks(render: Render):
    docs = render()
    jobs = by_kind(docs, "Job")
    migrate, attrs = jobs["crmflow-migrate"], jobs["crmflow-search-attributes"]
    hook_sa = by_kind(docs, "ServiceAccount")["crmflow-hooks"]
    for res in (migrate, attrs, hook_sa):
        ann = res["metadata"]["annotations"]
        assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert ann["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"

    def weight(r: dict) -> int:
        return int(r["metadata"]["annotations"]["helm.sh/hook-weight"])

    assert weight(hook_sa) < weight(migrate) < weight(attrs)
    assert container(migrate)["args"] == ["migrate"]
    assert container(attrs)["args"] == ["temporal", "register-search-attributes"]
    for job in (migrate, attrs):
        pod = job["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["serviceAccountName"] == "crmflow-hooks"
        # Hooks run before the ConfigMap exists: configuration is inline, not envFrom.
        env = env_of(container(job))
        assert "envFrom" not in container(job)
        assert env["TEMPORAL_ADDRESS"]["value"]
    assert env_of(container(migrate))["CRMFLOW_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    none = render({"migrations": {"enabled": False}, "searchAttributes": {"register": False}})
    assert not by_kind(none, "Job") and "crmflow-hooks" not in by_kind(none, "ServiceAccount")


def test_each_hook_job_gets_only_the_secrets_it_uses(render: Render):
    jobs = by_kind(render(None, "everything"), "Job")
    migrate = container(jobs["crmflow-all-migrate"])
    attrs = container(jobs["crmflow-all-search-attributes"])
    secret_refs = {
        name: {e["name"] for e in c["env"] if "valueFrom" in e}
        for name, c in (("migrate", migrate), ("attrs", attrs))
    }
    # crm.mode=grpc in everything.yaml: no CRM store to migrate.
    assert secret_refs == {"migrate": {"CRMFLOW_DATABASE_URL"}, "attrs": {"TEMPORAL_API_KEY"}}
    assert [m["name"] for m in migrate["volumeMounts"]] == ["tmp"]
    assert [m["name"] for m in attrs["volumeMounts"]] == ["tmp", "temporal-tls"]
    assert not [e for e in migrate["env"] if e["name"].startswith("TEMPORAL_TLS_CLIENT")]
    assert not [e for e in attrs["env"] if e["name"].startswith("CRMFLOW_GRPC_TLS")]


# ---- schema ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": 3}, "additional properties 'replicaCount' not allowed"),
        ({"editorApi": {"replica": 3}}, "additional properties 'replica' not allowed"),
        (
            {"executor": {"keda": {"enabled": True, "queue": "x"}}},
            "additional properties 'queue' not allowed",
        ),
        (
            {"temporal": {"tls": {"enabled": True, "cert": "x"}}},
            "additional properties 'cert' not allowed",
        ),
        (
            {"editorApi": {"probes": {"readiness": {"httpGet": {}}}}},
            "additional properties 'httpGet' not allowed",
        ),
        ({"config": {"logLevel": "verbose"}}, "value must be one of"),
        ({"crm": {"mode": "ftp"}}, "value must be one of"),
        ({"editorApi": {"replicas": -1}}, "minimum"),
        ({"editorApi": {"port": 70000}}, "maximum"),
        ({"temporal": {"address": "no-port"}}, "does not match pattern"),
        ({"image": {"digest": "latest"}}, "does not match pattern"),
        ({"securityContext": {"runAsNonRoot": False}}, "/securityContext/runAsNonRoot"),
    ],
)
def test_schema_refuses_bad_values(render: Render, values: dict, message: str):
    with pytest.raises(HelmError) as err:
        render(values)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"crm": {"mode": "grpc"}}, "crm.address is required when crm.mode is grpc"),
        ({"grpcTls": {"enabled": True}}, "grpcTls.existingSecret is required"),
        (
            {"datasourceResolver": {"enabled": False}},
            "crm.mode=embedded needs datasourceResolver.enabled",
        ),
        (
            {"executor": {"keda": {"enabled": True}, "autoscaling": {"enabled": True}}},
            "keda.enabled and autoscaling.enabled are exclusive",
        ),
    ],
)
def test_inconsistent_values_fail_with_a_reason(render: Render, values: dict, message: str):
    with pytest.raises(HelmError) as err:
        render(values)
    assert message in str(err.value)


@pytest.mark.parametrize("value_set", ["defaults", "production", "minimal", "everything"])
def test_example_value_sets_render(render: Render, value_set: str):
    kinds = {d["kind"] for d in render(None, value_set)}
    assert {"Deployment", "ConfigMap", "ServiceAccount", "Job"} <= kinds


def test_network_policies_when_enabled(render: Render):
    docs = render(
        {
            "networkPolicy": {
                "enabled": True,
                "ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "gw"}}}],
            }
        }
    )
    pols = by_kind(docs, "NetworkPolicy")
    assert pols["crmflow-default-deny"]["spec"]["ingress"] == []
    editor = pols["crmflow-editor-api"]["spec"]["ingress"][0]
    assert editor["ports"] == [{"port": 50051, "protocol": "TCP"}]
    assert {"namespaceSelector": {"matchLabels": {"team": "gw"}}} in editor["from"]
    assert pols["crmflow-executor-custom-code"]["spec"]["ingress"] == []
    # The gateway peers are for the API services, not for the executor.
    assert len(pols["crmflow-executor"]["spec"]["ingress"][0]["from"]) == 1


def test_pre_stop_sleep_covers_endpoint_removal(render: Render):
    docs = render({"enrollment": {"preStopSleepSeconds": 0}})
    for name in COMPONENTS:
        c = container(deployment(docs, name))
        if name == "enrollment":
            assert "lifecycle" not in c
            continue
        assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
        grace = deployment(docs, name)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert 5 + 20 < grace  # preStop + CRMFLOW_GRACE_SECONDS fit in the pod's grace period


def test_committed_schema_is_the_generators_output():
    generated = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "tools" / "gen_values_schema.py")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    committed = (CHART / "values.schema.json").read_text()
    assert json.loads(generated) == json.loads(committed), (
        "values.schema.json is stale: python deploy/tools/gen_values_schema.py > "
        "deploy/helm/crmflow/values.schema.json"
    )


@pytest.mark.parametrize("tls", [False, True])
def test_notes_tell_how_to_reach_the_services_and_the_runs(helm: str, tls: bool):
    cmd = [
        helm,
        "install",
        "crmflow",
        str(CHART),
        "--dry-run=client",
        "-n",
        "crmflow",
        "--set",
        "temporal.webUrl=https://temporal.example.com",
    ]
    if tls:
        cmd += ["--set", "grpcTls.enabled=true,grpcTls.existingSecret=tls,grpcTls.mtls=true"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    notes = out[out.index("NOTES:") :]
    assert "kubectl -n crmflow port-forward svc/crmflow-editor-api 50051:50051" in notes
    assert "grpc.health.v1.Health/Check" in notes
    assert ("-plaintext" in notes) != tls
    if tls:
        assert "-cert client.crt" in notes
        assert "-authority crmflow-editor-api.crmflow.svc.cluster.local" in notes
    assert "https://temporal.example.com/namespaces/crmflow/workflows" in notes
    assert 'CrmflowTenantId = "<tenant>"' in notes
    for address in (
        "crmflow-enrollment.crmflow.svc.cluster.local:50052",
        "crmflow-executor.crmflow.svc.cluster.local:50053",
    ):
        assert address in notes


def test_tenant_secrets_are_mounted_on_the_executors_only(render: Render):
    docs = render({"secrets": {"tenantSecrets": {"existingSecret": "tenant-secrets"}}})
    mounted = []
    for name in COMPONENTS:
        dep = deployment(docs, name)
        mounts = {m["name"]: m for m in container(dep)["volumeMounts"]}
        volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        if "tenant-secrets" in mounts:
            mounted.append(name)
            assert mounts["tenant-secrets"] == {
                "name": "tenant-secrets",
                "mountPath": "/tmp/crmflow/secrets",
                "readOnly": True,
            }
            assert volumes["tenant-secrets"]["secret"]["secretName"] == "tenant-secrets"
    assert mounted == ["executor", "executor-custom-code"]
    assert not [d for d in by_kind(render(), "Deployment").values() if "tenant-secrets" in str(d)]

"""Generate deploy/helm/crmflow/values.schema.json (the chart's values schema).

    python deploy/tools/gen_values_schema.py > deploy/helm/crmflow/values.schema.json

Written as code so the five component blocks share one definition and every object is closed
(``additionalProperties: false``): a typo in a values file fails `helm install` instead of
being silently ignored. Draft-07, which both Helm 3 and Helm 4 validate. tests/chart checks
that the committed schema is this script's output.
"""

from __future__ import annotations

import json
from typing import Any


def obj(props: dict[str, Any], required: tuple[str, ...] | list[str] = (), **kw: Any) -> dict:
    """A closed object: only the listed properties are allowed."""
    d = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        d["required"] = list(required)
    d.update(kw)
    return d


def S(**kw: Any) -> dict:
    return {"type": "string", **kw}


def I(**kw: Any) -> dict:  # noqa: E743
    return {"type": "integer", **kw}


def ref(name: str) -> dict:
    return {"$ref": f"#/definitions/{name}"}


B = {"type": "boolean"}

SECRETISH = (
    "(PASSWORD|PASSWD|SECRET|TOKEN|_KEY$|APIKEY|API_KEY|PRIVATE_KEY|CREDENTIAL|DATABASE_URL|DSN)"
)
ENV_NAME = "^[A-Za-z_][A-Za-z0-9_]*$"

defs = {
    "quantity": {
        "type": ["string", "number"],
        "pattern": "^[0-9]+(\\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$",
    },
    "resources": obj(
        {
            "requests": obj({k: ref("quantity") for k in ("cpu", "memory", "ephemeral-storage")}),
            "limits": obj({k: ref("quantity") for k in ("cpu", "memory", "ephemeral-storage")}),
        }
    ),
    "port": I(minimum=1, maximum=65535),
    "k8sName": S(pattern="^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", maxLength=253),
    "secretKey": S(pattern="^[-._a-zA-Z0-9]+$", minLength=1, maxLength=253),
    "logLevel": {"type": "string", "enum": ["", "DEBUG", "INFO", "WARNING", "ERROR"]},
    "plainEnv": {
        "description": (
            "Plain settings (NAME: value). Secret-looking names are refused: reference a"
            " Secret with secretEnv / secrets.extraEnv instead of inlining it."
        ),
        "type": "object",
        "propertyNames": {"pattern": ENV_NAME, "not": {"pattern": SECRETISH}},
        "additionalProperties": {"type": ["string", "number", "boolean"]},
    },
    "secretEnv": {
        "type": "array",
        "items": obj(
            {
                "name": S(pattern=ENV_NAME),
                "existingSecret": ref("k8sName"),
                "key": ref("secretKey"),
            },
            required=("name", "existingSecret", "key"),
        ),
    },
    "probe": obj(
        {
            "initialDelaySeconds": I(minimum=0),
            "periodSeconds": I(minimum=1),
            "timeoutSeconds": I(minimum=1),
            "failureThreshold": I(minimum=1),
            "successThreshold": I(minimum=1, maximum=1),
        }
    ),
    "probes": obj(
        {"startup": ref("probe"), "readiness": ref("probe"), "liveness": ref("probe")},
        required=("startup", "readiness", "liveness"),
    ),
    "autoscaling": obj(
        {
            "enabled": B,
            "minReplicas": I(minimum=1),
            "maxReplicas": I(minimum=1),
            "targetCPUUtilizationPercentage": I(minimum=0, maximum=100),
            "targetMemoryUtilizationPercentage": I(minimum=0, maximum=100),
        },
        required=("enabled",),
    ),
    "keda": obj(
        {
            "enabled": B,
            "minReplicaCount": I(minimum=0),
            "maxReplicaCount": I(minimum=1),
            "pollingInterval": I(minimum=1),
            "cooldownPeriod": I(minimum=0),
            "targetQueueSize": I(minimum=1),
            "activationTargetQueueSize": I(minimum=0),
            "queueTypes": {
                "type": "string",
                "enum": ["workflow", "activity", "workflow,activity", "activity,workflow"],
            },
        },
        required=("enabled",),
    ),
    "pdb": obj(
        {
            "enabled": B,
            "maxUnavailable": {"type": ["integer", "string"], "minimum": 0, "pattern": "^[0-9]+%$"},
        },
        required=("enabled",),
    ),
    "service": obj(
        {
            "enabled": B,
            "type": {"type": "string", "enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
            "annotations": ref("stringMap"),
        }
    ),
    "stringMap": {"type": "object", "additionalProperties": {"type": "string"}},
    "toleration": obj(
        {
            "key": S(),
            "operator": {"type": "string", "enum": ["Exists", "Equal"]},
            "value": S(),
            "effect": {
                "type": "string",
                "enum": ["", "NoSchedule", "PreferNoSchedule", "NoExecute"],
            },
            "tolerationSeconds": I(),
        }
    ),
    "affinity": obj(
        {
            # Inner terms are Kubernetes API objects, checked by the API server (and by
            # kubernetes-validate in CI); the top level is closed so a misplaced key fails here.
            "nodeAffinity": {"type": "object"},
            "podAffinity": {"type": "object"},
            "podAntiAffinity": {"type": "object"},
        }
    ),
    "topologySpreadConstraint": obj(
        {
            "maxSkew": I(minimum=1),
            "topologyKey": S(),
            "whenUnsatisfiable": {"type": "string", "enum": ["DoNotSchedule", "ScheduleAnyway"]},
            "labelSelector": {"type": "object"},
            "minDomains": I(minimum=1),
            "matchLabelKeys": {"type": "array", "items": S()},
            "nodeAffinityPolicy": {"type": "string", "enum": ["Honor", "Ignore"]},
            "nodeTaintsPolicy": {"type": "string", "enum": ["Honor", "Ignore"]},
        },
        required=("maxSkew", "topologyKey", "whenUnsatisfiable"),
    ),
    "seccompProfile": obj(
        {
            "type": {"type": "string", "enum": ["RuntimeDefault", "Localhost"]},
            "localhostProfile": S(),
        },
        required=("type",),
    ),
    "jobResources": ref("resources"),
}


def component(*, service_toggle: bool | None = False, keda: bool = False) -> dict:
    props = {
        "enabled": B,
        "replicas": I(minimum=0),
        "port": ref("port"),
        "logLevel": ref("logLevel"),
        "resources": ref("resources"),
        "env": ref("plainEnv"),
        "secretEnv": ref("secretEnv"),
        "podAnnotations": ref("stringMap"),
        "podLabels": ref("stringMap"),
        "nodeSelector": ref("stringMap"),
        "tolerations": {"type": "array", "items": ref("toleration")},
        "affinity": ref("affinity"),
        "topologySpreadConstraints": {"type": "array", "items": ref("topologySpreadConstraint")},
        "priorityClassName": S(),
        "terminationGracePeriodSeconds": I(minimum=0),
        "preStopSleepSeconds": I(minimum=0, maximum=120),
        "probes": ref("probes"),
        "autoscaling": ref("autoscaling"),
        "pdb": ref("pdb"),
    }
    req = ["enabled", "replicas", "port", "resources", "probes", "autoscaling", "pdb"]
    if service_toggle is not None:
        props["service"] = ref("service")
        req.append("service")
    if keda:
        props["keda"] = ref("keda")
        req.append("keda")
    return obj(props, required=req)


defs["serviceComponent"] = component()
defs["executorComponent"] = component(keda=True)
defs["workerComponent"] = component(service_toggle=None, keda=True)

security_context = obj(
    {
        "allowPrivilegeEscalation": {"const": False},
        "readOnlyRootFilesystem": B,
        "runAsNonRoot": {"const": True},
        "runAsUser": I(minimum=1),
        "runAsGroup": I(minimum=0),
        "privileged": {"const": False},
        "capabilities": obj(
            {
                "drop": {"type": "array", "items": S(), "contains": {"const": "ALL"}},
                "add": {"type": "array", "items": {"type": "string", "enum": ["NET_BIND_SERVICE"]}},
            },
            required=("drop",),
        ),
        "seccompProfile": ref("seccompProfile"),
    },
    required=("allowPrivilegeEscalation", "runAsNonRoot", "capabilities", "seccompProfile"),
    description=(
        "Container security context. The restricted Pod Security Standard is enforced:"
        " no privilege escalation, non-root, ALL capabilities dropped."
    ),
)

pod_security_context = obj(
    {
        "runAsNonRoot": {"const": True},
        "runAsUser": I(minimum=1),
        "runAsGroup": I(minimum=0),
        "fsGroup": I(minimum=0),
        "fsGroupChangePolicy": {"type": "string", "enum": ["OnRootMismatch", "Always"]},
        "supplementalGroups": {"type": "array", "items": I(minimum=0)},
        "seccompProfile": ref("seccompProfile"),
    },
    required=("runAsNonRoot", "seccompProfile"),
)


def job(flag: str) -> dict:
    return obj(
        {
            flag: B,
            "backoffLimit": I(minimum=0),
            "activeDeadlineSeconds": I(minimum=1),
            "resources": ref("resources"),
        },
        required=(flag,),
    )


tls_common = {
    "existingSecret": {"anyOf": [{"const": ""}, ref("k8sName")]},
    "certKey": ref("secretKey"),
    "keyKey": ref("secretKey"),
    "caKey": {"anyOf": [{"const": ""}, ref("secretKey")]},
}

schema = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "crmflow Helm chart values",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "global": {"type": "object", "description": "Reserved by Helm for parent charts."},
        "nameOverride": S(maxLength=30),
        "fullnameOverride": S(maxLength=40),
        "commonLabels": ref("stringMap"),
        "clusterDomain": S(pattern="^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        "image": obj(
            {
                "repository": S(minLength=1),
                "tag": S(pattern="^$|^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"),
                "digest": S(pattern="^$|^sha256:[a-f0-9]{64}$"),
                "pullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]},
            },
            required=("repository",),
        ),
        "imagePullSecrets": {"type": "array", "items": ref("k8sName")},
        "serviceAccount": obj(
            {
                "create": B,
                "name": S(),
                "annotations": ref("stringMap"),
                "automountToken": B,
            }
        ),
        "config": obj(
            {
                "logLevel": {"type": "string", "enum": ["DEBUG", "INFO", "WARNING", "ERROR"]},
                "logFormat": {"type": "string", "enum": ["json", "text"]},
                "graceSeconds": {"type": "number", "minimum": 0, "maximum": 600},
                "otlpEndpoint": S(pattern="^$|^https?://"),
                "webhookAllowPrivate": {"type": "array", "items": S(minLength=1)},
                "customCodeIsolation": {"type": "string", "enum": ["required", "best-effort"]},
                "smtp": obj(
                    {
                        "host": S(),
                        "port": ref("port"),
                        "sender": S(pattern="^$|^[^@\\s]+@[^@\\s]+$"),
                    }
                ),
                "extraEnv": ref("plainEnv"),
            }
        ),
        "crm": obj(
            {
                "mode": {"type": "string", "enum": ["embedded", "grpc"]},
                "address": S(pattern="^$|^[^:\\s]+:[0-9]+$"),
            },
            required=("mode",),
        ),
        "temporal": obj(
            {
                "address": S(
                    pattern="^[^:\\s]+:[0-9]+$", description="host:port of the Temporal frontend"
                ),
                "namespace": S(minLength=1),
                "taskQueue": S(minLength=1),
                "customCodeTaskQueue": S(minLength=1),
                "webUrl": S(pattern="^$|^https?://"),
                "tls": obj({"enabled": B, "serverName": S(), **tls_common}, required=("enabled",)),
                "apiKey": obj(
                    {
                        "existingSecret": {"anyOf": [{"const": ""}, ref("k8sName")]},
                        "key": ref("secretKey"),
                    }
                ),
            },
            required=("address", "namespace"),
        ),
        "database": obj(
            {
                "existingSecret": ref("k8sName"),
                "urlKey": ref("secretKey"),
                "crmUrlKey": ref("secretKey"),
            },
            required=("existingSecret", "urlKey", "crmUrlKey"),
        ),
        "secrets": obj(
            {
                "secretStore": obj(
                    {
                        "existingSecret": {"anyOf": [{"const": ""}, ref("k8sName")]},
                        "key": ref("secretKey"),
                    }
                ),
                "tenantSecrets": obj(
                    {"existingSecret": {"anyOf": [{"const": ""}, ref("k8sName")]}}
                ),
                "extraEnv": ref("secretEnv"),
            }
        ),
        "grpcTls": obj(
            {"enabled": B, "mtls": B, "healthPort": ref("port"), **tls_common},
            required=("enabled",),
        ),
        "migrations": job("enabled"),
        "searchAttributes": job("register"),
        "podSecurityContext": pod_security_context,
        "securityContext": security_context,
        "tmpSizeLimit": ref("quantity"),
        "networkPolicy": obj(
            {"enabled": B, "ingressFrom": {"type": "array", "items": {"type": "object"}}}
        ),
        "editorApi": ref("serviceComponent"),
        "enrollment": ref("serviceComponent"),
        "datasourceResolver": ref("serviceComponent"),
        "executor": ref("executorComponent"),
        "executorCustomCode": ref("workerComponent"),
        "tests": obj({"enabled": B}),
    },
    "definitions": defs,
}

if __name__ == "__main__":
    print(json.dumps(schema, indent=2))

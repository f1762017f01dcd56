"""Deliberately changed copies of the interpreter, used only by test_replay.py.

``UnpatchedChange`` pauses one second before every step (a new timer command) — the kind of
innocent-looking interpreter change ("let the CRM settle") that breaks running enrollments.
``PatchedChange``
makes the same change behind ``workflow.patched``, the way interpreter changes must ship.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from executor.workflow import EnrolledRecord

    from crmflow.model.enrollment import EnrollmentInput, EnrollmentResult
    from crmflow.temporal.ids import ENROLLMENT_WORKFLOW_TYPE


@workflow.defn(name=ENROLLMENT_WORKFLOW_TYPE)
class UnpatchedChange(EnrolledRecord):
    @workflow.run
    async def run(self, input: EnrollmentInput) -> EnrollmentResult:
        return await super().run(input)

    async def _step(self, action_id: str) -> str:
        await workflow.sleep(1)
        return await super()._step(action_id)


@workflow.defn(name=ENROLLMENT_WORKFLOW_TYPE)
class PatchedChange(EnrolledRecord):
    @workflow.run
    async def run(self, input: EnrollmentInput) -> EnrollmentResult:
        return await super().run(input)

    async def _step(self, action_id: str) -> str:
        if workflow.patched("settle-before-step"):
            await workflow.sleep(1)
        return await super()._step(action_id)

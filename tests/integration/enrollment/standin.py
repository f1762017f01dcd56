"""A stand-in EnrolledRecord workflow: records what enrollment started and what it signalled.

The executor's real interpreter is tested elsewhere; here we only observe starts and signals.
"""

from __future__ import annotations

from temporalio import workflow

from crmflow.model.enrollment import EnrollmentInput, RecordEventSignal, UnenrollSignal


@workflow.defn(name="EnrolledRecord")
class StandInEnrolledRecord:
    def __init__(self) -> None:
        self.unenrolled: UnenrollSignal | None = None
        self.events: list[str] = []
        self.input: EnrollmentInput | None = None

    @workflow.run
    async def run(self, inp: EnrollmentInput) -> str:
        self.input = inp
        await workflow.wait_condition(lambda: self.unenrolled is not None)
        assert self.unenrolled is not None
        return self.unenrolled.reason.value

    @workflow.signal(name="unenroll")
    def unenroll(self, signal: UnenrollSignal) -> None:
        self.unenrolled = signal

    @workflow.signal(name="record_event")
    def record_event(self, signal: RecordEventSignal) -> None:
        self.events.append(signal.event.event_id)

    @workflow.query(name="seen_events")
    def seen_events(self) -> list[str]:
        return self.events


@workflow.defn(name="EnrolledRecord")
class QuickEnrolledRecord:
    """Finishes at once (lets re-enrollment tests enroll the same record again)."""

    @workflow.run
    async def run(self, inp: EnrollmentInput) -> str:
        return "completed"

"""Domain errors, independent of transport.

Services raise these; the gRPC error interceptor (``crmflow.grpc.errors``) maps each to one
status code with ``google.rpc`` details. Keeping them transport-free lets the same code run
inside Temporal activities, the CLI and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    """One bad field; ``field`` is a dotted path into the request (``definition.actions.a1``)."""

    field: str
    description: str


class CrmflowError(Exception):
    """Base of every error a user can cause. Never maps to UNKNOWN/INTERNAL."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(CrmflowError):
    def __init__(self, message: str, violations: list[FieldViolation] | None = None) -> None:
        super().__init__(message)
        self.violations: list[FieldViolation] = list(violations or [])

    @classmethod
    def field(cls, field_path: str, description: str) -> InvalidArgument:
        return cls(f"{field_path}: {description}", [FieldViolation(field_path, description)])


class NotFound(CrmflowError):
    def __init__(self, resource_type: str, resource_name: str, message: str | None = None) -> None:
        super().__init__(message or f"{resource_type} {resource_name!r} not found")
        self.resource_type = resource_type
        self.resource_name = resource_name


class AlreadyExists(CrmflowError):
    pass


@dataclass(frozen=True)
class PreconditionViolation:
    type: str
    subject: str
    description: str


class FailedPrecondition(CrmflowError):
    def __init__(self, message: str, violations: list[PreconditionViolation] | None = None) -> None:
        super().__init__(message)
        self.violations: list[PreconditionViolation] = list(violations or [])


class Aborted(CrmflowError):
    """A conflicting concurrent change (optimistic concurrency): the caller should re-read."""


class PermissionDenied(CrmflowError):
    """The tenant's plan or identity does not allow this."""


class Unauthenticated(CrmflowError):
    pass


class ResourceExhausted(CrmflowError):
    pass


@dataclass
class ErrorList:
    """Collects field violations so a request reports all of them at once."""

    violations: list[FieldViolation] = field(default_factory=list)

    def add(self, field_path: str, description: str) -> None:
        self.violations.append(FieldViolation(field_path, description))

    def raise_if_any(self, message: str = "invalid request") -> None:
        if self.violations:
            first = self.violations[0]
            summary = f"{message}: {first.field}: {first.description}"
            if len(self.violations) > 1:
                summary += f" (and {len(self.violations) - 1} more)"
            raise InvalidArgument(summary, self.violations)

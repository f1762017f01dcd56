"""`crmflow migrate` entry for the embedded CRM store (see crmflow.records.migrations)."""

from __future__ import annotations

from crmflow.records.migrations import migrate

__all__ = ["migrate"]

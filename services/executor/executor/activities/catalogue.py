"""Imports every handler module so their ``@handles`` registrations run."""

from __future__ import annotations

from executor.activities import record  # noqa: F401

"""Imports every handler module so their ``@handles`` registrations run."""

from __future__ import annotations

from executor.activities import (  # noqa: F401
    communication,
    custom_code,
    data,
    flow,
    record,
    webhook,
)

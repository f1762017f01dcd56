"""Leaving a process that used a Temporal client.

The Temporal SDK's Rust core can abort the interpreter during finalisation after the event loop
has closed (``PyGILState_Release``; temporalio/sdk-python#300), turning a clean shutdown into
exit 134/139. Once a command's work and graceful shutdown are done there is nothing left to
finalise, so we flush and leave with the real exit code.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

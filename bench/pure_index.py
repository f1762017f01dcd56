"""The enrollment trigger index as Python source, loaded beside the installed build.

``crmflow.criteria.index`` is normally the mypyc-compiled extension (setup.py); the import
system serves it in preference to the ``.py``. To measure the compiled build against the source
(``enrollment_bench.py``) or against another revision (``index_ab.py``), the source of
``index.py`` and ``trigger_index.py`` (from this checkout, or from a git revision) is executed
as separate modules, the trigger index rewired to that TransitionIndex, with the index's own
Python loops (not the C helpers of ``_native.c``).
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INDEX = "src/crmflow/criteria/index.py"
TRIGGER_INDEX = "services/enrollment/enrollment/trigger_index.py"


def _load(name: str, source: str, replace: tuple[tuple[str, str], ...] = ()) -> types.ModuleType:
    for old, new in replace:
        if old not in source:
            raise SystemExit(f"{name}: cannot rewire import {old!r}")
        source = source.replace(old, new)
    mod = types.ModuleType(name)
    mod.__file__ = f"<{name}>"
    sys.modules[name] = mod
    exec(compile(source, mod.__file__, "exec"), mod.__dict__)
    return mod


def trigger_index_class(rev: str | None = None, tag: str = "src") -> Any:
    """``TriggerIndex`` run from source, using that source's TransitionIndex: of git revision
    ``rev``, or of this checkout's files (``rev`` None)."""

    def read(path: str) -> str:
        if rev is None:
            return (ROOT / path).read_text()
        return subprocess.run(
            ["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout

    index = _load(f"crmflow.criteria.index_{tag}", read(INDEX))
    if hasattr(index, "NATIVE"):
        index.NATIVE = None  # its own Python loops, not the C helpers the install built
    mod = _load(
        f"enrollment.trigger_index_{tag}",
        read(TRIGGER_INDEX),
        (
            (
                "from crmflow.criteria.index import TransitionIndex",
                f"from crmflow.criteria.index_{tag} import TransitionIndex",
            ),
        ),
    )
    return mod.TriggerIndex

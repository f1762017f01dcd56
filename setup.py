"""Build hook: the enrollment service's hot module is compiled with mypyc, its innermost loop
is C.

Everything about the package is declared in pyproject.toml; this file only adds two
extensions:

* ``crmflow.criteria.index`` (the transition index every ingested event goes through) is
  plain, fully typed Python; mypyc turns the same source into a C extension that the import
  system prefers over the ``.py`` beside it (``make bench``: 1.5-3.4x events/s together with
  the C module below, see bench/README). The source stays the reference, and it runs as it
  is when the extension is not there.
* ``crmflow.criteria._native`` (``_native.c``) is the loop that narrows candidate terms by the
  record's property masks, on the ints' digits in place; ``index.NATIVE`` is None without it
  and the index runs its own Python loops (same answers, tests/unit/criteria/test_index.py).

* ``CRMFLOW_PURE_PYTHON=1`` skips the compilation (a platform without a C compiler, or to
  debug the index with a Python debugger).
* A failed compilation (no compiler) is a warning, not a failed install: the pure-Python
  module is used, and ``crmflow.criteria.index.compiled()`` / ``index.NATIVE`` say what is
  loaded (the enrollment service logs it at start-up).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

COMPILED = ["src/crmflow/criteria/index.py"]
# The index's innermost loop, hand-written C (index.py runs its own loops without it).
NATIVE = Extension("crmflow.criteria._native", ["src/crmflow/criteria/_native.c"])


class OptionalBuildExt(build_ext):  # type: ignore[misc]
    """All of the extension or none of it: mypyc emits a shim and a library per module, and a
    shim without its library would break the import the pure module would have served."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any compiler failure means "stay pure"
            for ext in self.extensions:
                built = Path(self.get_ext_fullpath(ext.name))
                built.unlink(missing_ok=True)
            print(
                f"crmflow: mypyc compilation failed ({exc}); the pure-Python index is used",
                file=sys.stderr,
            )


def _ext_modules() -> list[Any]:
    if os.environ.get("CRMFLOW_PURE_PYTHON"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:  # a build without the build-system requirements (e.g. --no-build-isolation)
        print("crmflow: mypyc not available; the pure-Python index is used", file=sys.stderr)
        return []
    # No config file: the project's mypy settings load the pydantic plugin, which the isolated
    # build environment does not have; the index needs none of it to compile.
    return [
        *mypycify(["--config-file=", "--ignore-missing-imports", *COMPILED], opt_level="3"),
        NATIVE,
    ]


setup(ext_modules=_ext_modules(), cmdclass={"build_ext": OptionalBuildExt})

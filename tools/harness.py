"""The test harness's fast mode (tests/harness/fast_mode.py), for the tools that run notebooks.

Every tool that executes notebooks under test starts their kernels with
:func:`kernel_environment`: ``IPYTHONDIR`` at the harness's IPython start-up, which shortens
training when the harness's switch ``FLOWLIB_FAST`` is on.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

FILE = Path(__file__).resolve().parents[1] / "tests" / "harness" / "fast_mode.py"
_NAME = "flowlib_test_harness_fast_mode"  # the name the kernels' start-up file uses too


def fast_mode() -> ModuleType:
    """tests/harness/fast_mode.py, loaded once."""
    if _NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(_NAME, FILE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[_NAME]


def kernel_environment(fast: bool | None = None) -> dict[str, str]:
    """``os.environ`` for a process starting kernels: the harness installed, the switch ``fast``.

    ``fast=None`` keeps the switch as the environment sets it (``FLOWLIB_FAST``).
    """
    harness = fast_mode()
    return harness.kernel_environment(fast=harness.enabled() if fast is None else fast)

"""IPython start-up of the test harness: the notebooks' fast mode (tests/harness/fast_mode.py).

Runs in every kernel the harness starts (``IPYTHONDIR=tests/harness/ipython``, and the
Colab-like run's ``tests/colab/ipython``, whose start-up links here), before the first cell.
It loads the harness module under a fixed name (hidden tests can ask it the rule) and
installs it: with ``FLOWLIB_FAST=1`` every trainer it lists is shortened.
"""

import importlib.util
import sys
from pathlib import Path

_NAME = "flowlib_test_harness_fast_mode"
if _NAME not in sys.modules:
    _path = Path(__file__).resolve().parents[3] / "fast_mode.py"  # tests/harness/fast_mode.py
    _spec = importlib.util.spec_from_file_location(_NAME, _path)
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _module
    _spec.loader.exec_module(_module)
sys.modules[_NAME].install()

"""The one switch between the reader's full run and CI's quick run.

The notebooks are written for the reader: training steps and sample sizes appear in them
as plain numbers. With ``FLOWLIB_FAST=1`` in the environment (CI sets it), flowlib itself
shortens the expensive part, training: :func:`flowlib.train.fit` runs
:func:`shortened` ``(steps)`` steps instead of ``steps``. Everything else is the same code,
so CI executes what the reader executes, only with less training. A notebook's checks are
therefore written to hold after a short training too (a trained flow beats its untrained
self or a Gaussian baseline); the numbers of a full run are printed in the committed
outputs, and the benchmarks in ``bench/`` measure them.

:func:`pick` remains for scripts outside the notebooks (the demo, benchmarks).
"""
from __future__ import annotations

import os
from typing import TypeVar

FAST_MODE_VARIABLE = "FLOWLIB_FAST"

T = TypeVar("T")


def fast_mode() -> bool:
    """True when the environment variable ``FLOWLIB_FAST`` is set to a true value.

    ``1``, ``true``, ``yes`` and ``on`` (any case) switch the fast mode on; unset, empty,
    ``0``, ``false``, ``no`` and ``off`` leave it off. Anything else is a mistake and
    raises ``ValueError`` rather than silently picking a mode.
    """
    raw = os.environ.get(FAST_MODE_VARIABLE, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(
        f"{FAST_MODE_VARIABLE}={raw!r} is not understood; use 1 (fast, for CI) or 0 (full)."
    )


# In fast mode fit() keeps this fraction of the requested steps (at least FAST_MIN_STEPS).
FAST_STEP_FRACTION = 0.05
FAST_MIN_STEPS = 20


def shortened(steps: int) -> int:
    """The number of training steps to run for a request of ``steps``.

    ``steps`` itself in the reader's full run; in fast mode about 5% of it, but at least
    ``min(steps, 20)``: 4000 -> 200, 600 -> 30, 100 -> 20, 10 -> 10.
    """
    if not fast_mode():
        return steps
    return min(steps, max(FAST_MIN_STEPS, round(steps * FAST_STEP_FRACTION)))


def pick(full: T, fast: T) -> T:
    """Return ``fast`` in fast mode and ``full`` otherwise.

    Example: ``steps = pick(full=3000, fast=150)``.
    """
    return fast if fast_mode() else full


# Where the series lives: the notebooks' Colab badges and their Colab install cell name
# this repository and ref (tests/test_notebooks.py checks they agree).
REPOSITORY = "normalizing-flows-tf2/flowlib"
REF = "v0.1.0"

MINIMUM_VERSIONS = {"tensorflow": "2.16", "tensorflow_probability": "0.24"}


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def check_environment(verbose: bool = True) -> dict[str, str]:
    """Check the versions the series needs and the CI fast-mode sentinel; return the versions.

    Raises ``RuntimeError`` with what to do when TensorFlow or TensorFlow Probability is
    too old, when ``tf-keras`` is missing (TFP needs Keras 2), or when running under CI
    (``CI`` set) without ``FLOWLIB_FAST=1``: CI must execute the fast mode.
    """
    import importlib

    versions: dict[str, str] = {}
    for module, minimum in MINIMUM_VERSIONS.items():
        try:
            version = importlib.import_module(module).__version__
        except ImportError:
            raise RuntimeError(f"{module} is not installed; run `make venv` (or, in Colab, the first cell)") from None
        if _version_tuple(version) < _version_tuple(minimum):
            raise RuntimeError(f"{module} {version} is too old: the series needs {minimum} or newer. "
                               f"Upgrade it, e.g. `pip install -U {module.replace('_', '-')}`.")
        versions[module] = version
    try:
        versions["tf_keras"] = importlib.import_module("tf_keras").__version__
    except ImportError:
        raise RuntimeError("tf-keras is missing: TensorFlow Probability needs Keras 2. "
                           "Install it with `pip install tf-keras`.") from None
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes") and not fast_mode():
        raise RuntimeError(f"running under CI without {FAST_MODE_VARIABLE}=1: CI must execute "
                           "the notebooks in fast mode (see the Makefile's notebooks-test target)")
    if verbose:
        line = " | ".join(f"{name} {version}" for name, version in versions.items())
        if fast_mode():  # never in a reader's run, so never in the committed outputs
            line += f" | {FAST_MODE_VARIABLE}=1: training shortened to ~{FAST_STEP_FRACTION:.0%} of its steps"
        print(line)
    return versions

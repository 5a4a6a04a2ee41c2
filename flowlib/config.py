"""The one switch between the reader's full run and CI's quick run.

The notebooks are written for the reader: training steps and sample sizes appear in them
as plain numbers. With ``FLOWLIB_FAST=1`` in the environment (CI sets it), flowlib itself
shortens the expensive part, training: :func:`flowlib.train.fit` runs
:func:`shortened` ``(steps)`` steps instead of ``steps``. Everything else is the same code,
so CI executes what the reader executes, only with less training. A notebook's checks are
therefore written to hold after a short training too (a trained flow beats its untrained
self or a Gaussian baseline); the numbers of a full run are printed in the committed
outputs, and the benchmarks in ``bench/`` measure them.

:func:`pick` chooses any other value by mode (``pick(full=3000, fast=150)``); flowlib
itself does not call it.
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
    raise ValueError(f"{FAST_MODE_VARIABLE}={raw!r} is not understood; use 1 (fast, for CI) or 0 (full).")


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


# Where the series lives, and the one ref every link names. The Colab badges (README,
# notebooks/, exercises/) open the notebooks at REF and each notebook's Colab cell installs
# flowlib at the same REF, so a reader in Colab always gets notebooks and library from one
# commit. To release: bump the version, set REF, run `python tools/refs.py write`
# (tests/test_config.py fails while any link disagrees).
REPOSITORY = "normalizing-flows-tf2/flowlib"
REF = "main"


def colab_url(path: str) -> str:
    """The "Open in Colab" address of ``path`` (e.g. ``"notebooks/05_realnvp.ipynb"``) at :data:`REF`."""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{REF}/{path}"


def install_url() -> str:
    """What the notebooks' Colab cell passes to ``pip install``: this repository at :data:`REF`."""
    return f"git+https://github.com/{REPOSITORY}@{REF}"


MINIMUM_VERSIONS = {"tensorflow": "2.16", "tf_keras": "2.16", "tensorflow_probability": "0.24"}


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _import_version(module: str, fix: str) -> str:
    """``module.__version__``; a RuntimeError saying ``fix`` when it is missing or broken."""
    import importlib

    try:
        return importlib.import_module(module).__version__
    except ModuleNotFoundError as error:
        if error.name != module:  # the module is there, one of its own imports is not
            raise RuntimeError(f"{module} is installed but cannot be imported ({error}). {fix}") from None
        raise RuntimeError(f"{module} is not installed. {fix}") from None
    except ImportError as error:
        raise RuntimeError(f"{module} is installed but cannot be imported ({error}). {fix}") from None


def check_environment(verbose: bool = True) -> dict[str, str]:
    """Check the versions the series needs and the CI fast-mode sentinel; return the versions.

    Checked in the order they depend on each other, so the message names the real cause:
    TensorFlow, then ``tf-keras`` (TensorFlow Probability imports it, so with it missing TFP
    itself fails to import), then TensorFlow Probability. ``tf-keras`` must match
    TensorFlow's major.minor version; the command given installs the matching one, so pip
    does not replace the TensorFlow already there (Colab's, for instance).

    Raises ``RuntimeError`` with what to do when a package is missing, broken or too old,
    when ``tf-keras`` does not match TensorFlow, or when running under CI (``CI`` set)
    without ``FLOWLIB_FAST=1``: CI must execute the fast mode.
    """
    versions: dict[str, str] = {}
    versions["tensorflow"] = _import_version(
        "tensorflow", "Install it with `pip install tensorflow` (or `make venv` in a checkout)."
    )
    tf_minor = ".".join(versions["tensorflow"].split(".")[:2])
    keras_fix = (
        f"TensorFlow Probability needs Keras 2 as tf-keras, matching TensorFlow {tf_minor}: "
        f'`pip install "tf-keras~={tf_minor}.0"` (in a notebook: `%pip install "tf-keras~={tf_minor}.0"`, '
        "then restart the kernel)."
    )
    versions["tf_keras"] = _import_version("tf_keras", keras_fix)
    versions["tensorflow_probability"] = _import_version(
        "tensorflow_probability",
        f'Install it with `pip install "tensorflow-probability>='
        f'{MINIMUM_VERSIONS["tensorflow_probability"]}"`.',
    )
    for module, minimum in MINIMUM_VERSIONS.items():
        if _version_tuple(versions[module]) < _version_tuple(minimum):
            raise RuntimeError(
                f"{module} {versions[module]} is too old: the series needs {minimum} or newer. "
                f"Upgrade it, e.g. `pip install -U {module.replace('_', '-')}`."
            )
    if _version_tuple(versions["tf_keras"])[:2] != _version_tuple(versions["tensorflow"])[:2]:
        raise RuntimeError(
            f"tf-keras {versions['tf_keras']} does not match TensorFlow {versions['tensorflow']}. "
            + keras_fix
        )
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes") and not fast_mode():
        raise RuntimeError(
            f"running under CI without {FAST_MODE_VARIABLE}=1: CI must execute "
            "the notebooks in fast mode (see the Makefile's notebooks-test target)"
        )
    versions = {name: versions[name] for name in ("tensorflow", "tensorflow_probability", "tf_keras")}
    if verbose:
        line = " | ".join(f"{name} {version}" for name, version in versions.items())
        if fast_mode():  # never in a reader's run, so never in the committed outputs
            line += f" | {FAST_MODE_VARIABLE}=1: training shortened to ~{FAST_STEP_FRACTION:.0%} of its steps"
        print(line)
    return versions

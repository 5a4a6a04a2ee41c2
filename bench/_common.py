"""Shared bits of the benchmarks: a header naming the machine and its load, and output
that goes both to the terminal and to ``bench/results/<name>.txt``.

The machine these numbers come from is small (2 CPU cores) and, while the series is
being written, shared with other jobs. Every figure is therefore printed next to the
load average at the time (``os.getloadavg``: runnable processes averaged over 1, 5
and 15 minutes; above 2 means the two cores were contended), and comparisons are made
within one run, interleaved, so that both sides see the same noise.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:  # run as `python bench/x.py` from anywhere
    sys.path.insert(0, str(ROOT))


def load() -> str:
    """The load averages over 1, 5 and 15 minutes, e.g. ``"load 1.52 1.80 1.91"``."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def header(title: str) -> None:
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    print(f"# {title}")
    print(
        f"# {datetime.datetime.now().isoformat(timespec='seconds')} | {platform.processor() or platform.machine()}"
        f" | {os.cpu_count()} CPUs | python {platform.python_version()} | TF {tf.__version__}"
        f" | TFP {tfp.__version__} | numpy {np.__version__}"
    )
    print(f"# {load()} at the start")


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()


@contextlib.contextmanager
def recorded(name: str, enabled: bool = True):
    """Copy everything printed inside the block to ``bench/results/<name>.txt``.

    The file is written to ``<name>.txt.tmp`` and renamed at the end, so an interrupted
    run never leaves a half-written result behind (``*.tmp`` is git-ignored).
    """
    if not enabled:
        yield
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    final = RESULTS / f"{name}.txt"
    partial = RESULTS / f"{name}.txt.tmp"
    with open(partial, "w") as handle:
        original = sys.stdout
        sys.stdout = _Tee(original, handle)
        try:
            yield
        finally:
            sys.stdout = original
    partial.replace(final)


def wait_for_quiet(max_load: float, timeout: float) -> str:
    """Wait (up to ``timeout`` seconds) until the 1-minute load is below ``max_load``.

    Returns a note for the output: the load when the wait ended and how long it took.
    """
    import time

    start = time.perf_counter()
    while os.getloadavg()[0] >= max_load and time.perf_counter() - start < timeout:
        time.sleep(15)
    waited = time.perf_counter() - start
    quiet = os.getloadavg()[0] < max_load
    return f"{load()} after waiting {waited:.0f} s for a 1-minute load below {max_load:g}" + (
        "" if quiet else " (gave up: the machine stayed busy)"
    )


def run_fresh(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh Python process (``python -c code *args``, TensorFlow's C++ logs
    quiet) and return the JSON object its last line of output prints. A fresh process per
    run: nothing traced or cached by one run can make the next one faster."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])

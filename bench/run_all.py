"""Run every benchmark, one after the other (``make bench``).

Each prints its figures and saves them to ``bench/results/<name>.txt``:

- ``profile.py``     where a training step's time goes (the ablation behind fit's speed-ups)
- ``throughput.py``  steps/s of flowlib's fit against TFP's stock RealNVP, interleaved
- ``quality.py``     held-out gap of the headline flow after 20, 60 and 180 s of training
- ``peers.py``       the headline against zuko and normflows, same protocol (needs ``.[peers]``, else skipped)
- ``sweep.py``       the coordinate-wise sweep that chose the DEFAULT_* settings (long)
- ``recipe_words.py`` the headline's depth, bins and width on words kept for choosing (long)
- ``spline_knots.py`` the spline's knots as ``tf.cumsum`` or a triangular product: steps/s, interleaved
- ``take_columns.py`` couplings selecting columns by a 0/1 product or ``tf.gather``: fit's first call
- ``stability.py``   how often the default recipe meets a non-finite loss (very long)
- ``notebooks.py``   wall time and peak memory of every notebook and of the demo

They take a while on two cores (the whole set well over an hour), so ``--only`` picks
some, e.g. ``.venv/bin/python bench/run_all.py --only throughput quality``. They run
in separate processes so that one's memory and compiled graphs do not slow the next.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    "profile",
    "throughput",
    "quality",
    "peers",
    "sweep",
    "recipe_words",
    "spline_knots",
    "take_columns",
    "stability",
    "notebooks",
]
DEFAULT = ["profile", "throughput", "quality", "peers", "notebooks"]  # the long ones on request


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        nargs="+",
        choices=ORDER,
        default=None,
        help=f"benchmarks to run (default: {' '.join(DEFAULT)}; add the long ones by name)",
    )
    parser.add_argument("--all", action="store_true", help="run all of them, the long ones included")
    args = parser.parse_args(argv)
    names = ORDER if args.all else (args.only or DEFAULT)
    failures = []
    for name in names:
        script = HERE / f"{name}.py"
        if not script.exists():
            print(f"== {name}: {script} is missing, skipped", flush=True)
            continue
        print(f"\n== {name} ==", flush=True)
        start = time.perf_counter()
        command = [sys.executable, str(script)]
        if name == "stability":  # it prints to stdout only; keep its figures like the others
            with open(HERE / "results" / "stability.txt", "w") as handle:
                code = subprocess.call(command, stdout=handle)
            print((HERE / "results" / "stability.txt").read_text(), end="")
        else:
            code = subprocess.call(command)
        print(
            f"== {name}: {'done' if code == 0 else f'FAILED (exit {code})'} in {time.perf_counter() - start:.0f} s",
            flush=True,
        )
        if code:
            failures.append(name)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

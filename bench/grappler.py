"""TensorFlow's graph optimiser (Grappler) and ``train.fit``: first call against later calls.

The test harness's fast mode (tests/harness/fast_mode.py) turns Grappler off, since its runs
are short; this measures what that trades. For each flow (flowlib's default RealNVP and spline
flow on "Flow"), ``train.fit`` runs 600 steps in calls of 100, once with TensorFlow's defaults
and once with ``disable_meta_optimizer``, each in a fresh process (the option is
process-wide), the two taking turns for ``--rounds`` rounds: the first call (tracing, graph
optimisation and 100 steps), the median later call, and the mean loss of the last 100 steps
(the same batches and weights: only the order of floating-point operations may differ).

    .venv/bin/python bench/grappler.py
"""

from __future__ import annotations

import argparse
import json
import statistics

import _common

SETTINGS = {"defaults": {}, "Grappler off": {"disable_meta_optimizer": True}}

ONE_RUN = """
import json, sys
import tensorflow as tf
options, kind = json.loads(sys.argv[1]), sys.argv[2]
if options:
    tf.config.optimizer.set_experimental_options(options)
from flowlib import data, flows, train
x = data.PictureDistribution.from_text("Flow").sample(20_000, seed=0)
flow = {"RealNVP": flows.realnvp, "spline": flows.spline_flow}[kind](seed=0)
history = train.fit(flow, x, steps=600, steps_per_call=100, seed=0, progress=False)
later = [b - a for a, b in zip(history.times[1:], history.times[2:])]
print(json.dumps(dict(first=history.times[0], later=later, loss=sum(history.loss[-100:]) / 100)))
"""


def one_run(options: dict, kind: str) -> dict:
    return _common.run_fresh(ONE_RUN, json.dumps(options), kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    with _common.recorded("grappler", enabled=not args.no_record):
        _common.header("train.fit with and without TensorFlow's graph optimiser (Grappler)")
        print(f"# {args.rounds} rounds; each run a fresh process; median over rounds\n")
        print(f"{'flow':<9} {'setting':<14} {'first call (s)':>15} {'later call (s)':>15} {'last loss':>10}")
        for kind in ("RealNVP", "spline"):
            runs = {name: [] for name in SETTINGS}
            for _ in range(args.rounds):
                for name, options in SETTINGS.items():
                    runs[name].append(one_run(options, kind))
            for name in SETTINGS:
                first = statistics.median(run["first"] for run in runs[name])
                later = statistics.median(statistics.median(run["later"]) for run in runs[name])
                loss = statistics.median(run["loss"] for run in runs[name])
                print(f"{kind:<9} {name:<14} {first:15.2f} {later:15.3f} {loss:10.4f}")
        print(f"# {_common.load()} at the end")


if __name__ == "__main__":
    main()

"""Selecting columns by a 0/1 product (``bijectors.take_columns``) against ``tf.gather``.

Couplings whose mask does not keep the first coordinates, and notebook 09's convolutional
coupling networks, select columns of their inputs and outputs. flowlib does it with a
product by a constant 0/1 matrix; this puts the gather back (``tf.gather(x, index,
axis=-1)`` in place of every ``take_columns`` function) and compares, each in a fresh
process, the two taking turns for ``--rounds`` rounds: ``train.fit``'s first call (tracing,
graph optimisation and 100 steps), the median later call of 100 steps, and the losses
(the same batches and weights: the two must agree to the last digit).

Flows: notebook 09's multi-scale flow on the 8x8 digits (16 couplings with checkerboard and
channel masks, batch 64) and a 2-D RealNVP whose masks keep the second coordinate (8
couplings, batch 256).

    .venv/bin/python bench/take_columns.py
"""

from __future__ import annotations

import argparse
import statistics

import _common

ONE_RUN = """
import json, sys
import numpy as np
import tensorflow as tf
from flowlib import bijectors, data, flows, images, train
from flowlib.flow import Flow
way, kind = sys.argv[1], sys.argv[2]
if way == "tf.gather":
    bijectors.take_columns = lambda index, size: (lambda x: tf.gather(x, np.asarray(index), axis=-1))
    images.take_columns = bijectors.take_columns
if kind == "images":
    split = images.load_digits()
    height, width, channels = split.shape
    x = images.Logit(alpha=0.05).inverse(images.dequantize(split.train, split.num_levels, seed=1, copies=20)).numpy()
    flow = images.multiscale_flow(height, width, channels, num_scales=2, network="conv", hidden=32, seed=0).flow
    batch_size = 64
else:
    x = data.PictureDistribution.from_text("Flow").sample(20_000, seed=0)
    layers = [bijectors.AffineCoupling(bijectors.half_mask(2, keep_first=False), seed=i, name=f"coupling_{i}") for i in range(8)]
    flow = Flow(layers, flows.standard_normal(2), name="realnvp_alternating_masks")
    batch_size = 256
history = train.fit(flow, x, steps=400, steps_per_call=100, batch_size=batch_size, seed=0, progress=False)
later = [b - a for a, b in zip(history.times[1:], history.times[2:])]
print(json.dumps(dict(first=history.times[0], later=later, loss=[float(v) for v in history.loss[::50]])))
"""

WAYS = ("take_columns", "tf.gather")


def one_run(way: str, kind: str) -> dict:
    return _common.run_fresh(ONE_RUN, way, kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    with _common.recorded("take_columns", enabled=not args.no_record):
        _common.header("selecting columns: a 0/1 product (take_columns) against tf.gather, in train.fit")
        print(
            f"# {args.rounds} rounds; each run a fresh process; median over rounds; 400 steps in calls of 100\n"
        )
        print(f"{'flow':<8} {'way':<13} {'first call (s)':>15} {'later call (s)':>15}  same losses | load")
        for kind in ("images", "2-D"):
            runs = {way: [] for way in WAYS}
            for _ in range(args.rounds):
                for way in WAYS:
                    runs[way].append(one_run(way, kind))
            for way in WAYS:
                first = statistics.median(run["first"] for run in runs[way])
                later = statistics.median(statistics.median(run["later"]) for run in runs[way])
                same = all(run["loss"] == runs[WAYS[0]][0]["loss"] for run in runs[way])
                print(f"{kind:<8} {way:<13} {first:15.2f} {later:15.3f}  {same!s:>11} | {_common.load()}")
        print(f"# {_common.load()} at the end")


if __name__ == "__main__":
    main()

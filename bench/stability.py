"""How often does flowlib's default recipe meet a non-finite loss?

Trains the headline recipe (:data:`flowlib.recipe.HEADLINE`: its architecture, batch,
schedule and learning rate; with ``--layer`` another kind's recipe of
``flowlib.recipe.RECIPES``, e.g. ``--layer maf``) on the default word ("Flow", 100,000 training points, like
``python -m flowlib demo``): once per seed at the recipe's learning rate and once at
three times it. Every run counts as
*non-finite* if the guard in ``fit`` had to step in at all: a rescue (a NaN or infinite
loss, or non-finite weights, after which the last good state is restored and the
learning rate halved) or a stop (too many rescues). The table reports the runs with
such an event, the rescues and stops in total, and the held-out gap to the entropy
bound (nats) the runs reached.

Nothing here is asserted: it prints figures. It is slow at full size (40 runs of
4000 steps: 30 minutes measured on two shared CPU cores, longer when they are
busy), so run it in the background::

    nohup .venv/bin/python bench/stability.py > bench/results/stability.txt 2> /tmp/stability.err &
    .venv/bin/python bench/stability.py --quick        # a smoke run of a minute or two
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import inspect
import io
import os
import platform
import statistics
import sys
import time

import _common

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Steps per run: a fifth of the demo's (flowlib.recipe.DEMO_STEPS), with the cosine schedule
# over them, so the learning rate stays near its peak for longer in steps than in the demo.
STEPS = 4000
NUM_TRAIN, NUM_TEST = 100_000, 50_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="runs per learning rate (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help=f"training steps per run (default: {STEPS})")
    parser.add_argument(
        "--factor",
        type=float,
        default=3.0,
        help="the second learning rate is this times the default (default: %(default)s)",
    )
    parser.add_argument("--text", default="Flow", help="the word to learn (default: %(default)s)")
    parser.add_argument(
        "--layer",
        choices=("affine", "spline", "maf", "iaf"),
        default=None,
        help="the recipe of this layer kind (flowlib.recipe.RECIPES; iaf: MAF's recipe with IAF "
        "layers; default: the headline's own)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="TensorFlow intra-op threads, 0 = TensorFlow's choice (default: %(default)s)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a tiny smoke run: 2 seeds, 100 steps, 20,000 training points"
    )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be positive")
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be positive")
    if not args.factor > 0:
        parser.error("--factor must be positive")
    return args


def run_one(recipe, target, learning_rate: float, seed: int, steps: int, num_train: int, num_test: int):
    """Train one flow of ``recipe``; return (history, evaluation, guard messages)."""
    from flowlib import metrics, train

    x_train = target.sample(num_train, seed=seed)
    x_test = target.sample(num_test, seed=seed + 1)
    flow = recipe.build(seed=seed)
    messages = io.StringIO()
    with contextlib.redirect_stdout(messages):  # fit prints each rescue; we report them below
        history = train.fit(
            flow,
            x_train,
            steps=steps,
            seed=seed,
            progress=False,
            **recipe.replace(learning_rate=learning_rate).fit_kwargs(),
        )
    return history, metrics.evaluate(flow, target, x_test), history.events


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seeds = 2 if args.quick else args.seeds
    steps = args.steps or (100 if args.quick else STEPS)
    num_train, num_test = (20_000, 5_000) if args.quick else (NUM_TRAIN, NUM_TEST)

    import tensorflow as tf

    if args.threads:  # on a shared machine, 1 thread per process wastes less time in contention
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import tensorflow_probability as tfp

    from flowlib import data, train
    from flowlib.recipe import HEADLINE, RECIPES

    if args.layer is None:
        recipe = HEADLINE
    elif args.layer == "iaf":
        recipe = RECIPES["maf"].replace(layer="iaf")
    else:
        recipe = RECIPES[args.layer]
    target = data.PictureDistribution.from_text(args.text)
    default_lr = recipe.learning_rate
    rates = [default_lr, args.factor * default_lr]

    print("# Stability of flowlib's default recipe (bench/stability.py)")
    print(
        f"# {datetime.datetime.now().isoformat(timespec='seconds')} | {platform.node()} | "
        f"{os.cpu_count()} CPUs | TF {tf.__version__} | TFP {tfp.__version__}"
    )
    print(f"# {_common.load()} at the start")
    print(f"# recipe: {recipe.label()}")
    print(
        f"# steps={steps}, max_retries={inspect.signature(train.fit).parameters['max_retries'].default}; "
        f"data: “{target.name}”, {num_train:,} training and "
        f"{num_test:,} held-out points per seed; entropy bound {target.entropy():.3f} nats"
    )
    print(
        f"# {seeds} seeds x learning rates {', '.join(f'{r:g}' for r in rates)}"
        + (" (--quick)" if args.quick else "")
    )
    print()
    print(f"{'lr':>7} {'seed':>4} {'rescues':>7} {'stopped':>7} {'gap':>7} {'seconds':>7}  load at the end")
    sys.stdout.flush()

    results: dict[float, list] = {rate: [] for rate in rates}
    start = time.perf_counter()
    # Seeds outer, rates inner: a run cut short still has both rates for the seeds it finished.
    interrupted = False
    try:
        for seed in range(seeds):
            for rate in rates:
                history, evaluation, events = run_one(recipe, target, rate, seed, steps, num_train, num_test)
                results[rate].append((history, evaluation))
                print(
                    f"{rate:>7g} {seed:>4d} {history.rescues:>7d} {str(history.stopped):>7} "
                    f"{evaluation.gap:>7.3f} {history.seconds:>7.1f}  {_common.load()}"
                )
                for event in events:
                    print(f"        {event}")
                sys.stdout.flush()
    except KeyboardInterrupt:  # Ctrl-C: still summarise the runs that finished
        interrupted = True

    print()
    print(
        f"Summary{' of the runs finished before the interruption' if interrupted else ''} "
        f"({steps} steps each; total {time.perf_counter() - start:.0f} s)"
    )
    print()
    print(
        "| learning rate | runs | runs with a non-finite loss | rescues (total) | stops | "
        "median gap (nats) | worst gap (nats) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for rate in rates:
        runs = results[rate]
        if not runs:
            continue
        non_finite = sum(h.rescues > 0 or h.stopped for h, _ in runs)
        rescues = sum(h.rescues for h, _ in runs)
        stops = sum(h.stopped for h, _ in runs)
        gaps = [e.gap for _, e in runs]
        label = f"{rate:g}" + (" (default)" if rate == default_lr else f" ({args.factor:g}x)")
        print(
            f"| {label} | {len(runs)} | {non_finite} | {rescues} | {stops} | "
            f"{statistics.median(gaps):.3f} | {max(gaps):.3f} |"
        )
    print(f"# {_common.load()} at the end")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

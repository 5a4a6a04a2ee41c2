"""The spline's knots under XLA: ``tf.cumsum`` against a product with a triangle of ones.

``flowlib.splines.knots`` turns bin sizes into knot positions with running sums. Compiled
by XLA (the headline's ``fit(jit_compile=True)``), ``tf.cumsum`` becomes a reduce-window as
wide as the axis (TensorFlow's ``compiler/tf2xla/kernels/scan_ops.cc``), so its cost grows
with the square of the number of bins, in code that does not vectorise as a matrix
product does. flowlib now writes the sums as ``tf.matmul(sizes, upper triangle of ones)``.
This bench trains the headline's shape (:data:`flowlib.recipe.HEADLINE`) at 16 and 32 bins
with each version of ``knots`` (the old one patched back in for the comparison), with and
without XLA, and prints the steps per second after compilation (``History.times``, calls 2
onwards), the rounds interleaved so that both versions see the same load.

    .venv/bin/python bench/spline_knots.py              # 2 rounds, about 4 minutes
    .venv/bin/python bench/spline_knots.py --steps 500 --rounds 1 --no-record   # a smoke run
"""

from __future__ import annotations

import argparse
import statistics

import _common


def cumsum_knots(widths, heights, slopes, bound):
    """``flowlib.splines.knots`` as it was: the running sums by ``tf.cumsum``."""
    import tensorflow as tf

    lower = tf.fill(tf.shape(widths[..., :1]), tf.cast(-bound, widths.dtype))
    upper = -lower

    def positions(sizes):
        return tf.concat([lower, lower + tf.cumsum(sizes[..., :-1], axis=-1), upper], axis=-1)

    ones = tf.ones_like(lower)
    return positions(widths), positions(heights), tf.concat([ones, slopes, ones], axis=-1)


def steps_per_second(recipe, x_train, steps: int, knots) -> float:
    from flowlib import splines, train

    original = splines.knots
    splines.knots = knots
    try:
        history = train.fit(recipe.build(seed=0), x_train, steps=steps, progress=False, **recipe.fit_kwargs())
    finally:
        splines.knots = original
    times = history.times
    return 100 * (len(times) - 1) / (times[-1] - times[0])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="training steps per run (default 3000)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)

    import _budget

    from flowlib import splines
    from flowlib.recipe import HEADLINE

    versions = {"tf.cumsum": cumsum_knots, "triangle": splines.knots}
    _, x_train, _ = _budget.data("Flow")
    with _common.recorded("spline_knots", enabled=not args.no_record):
        _common.header(f"spline knots: steps/s of the headline's shape, {args.steps} steps per run")
        rates: dict[tuple, list[float]] = {}
        for round_index in range(args.rounds):
            for jit_compile in (True, False):
                for num_bins in (16, 32):
                    recipe = HEADLINE.replace(num_bins=num_bins, jit_compile=jit_compile)
                    for name, knots in versions.items():
                        rate = steps_per_second(recipe, x_train, args.steps, knots)
                        rates.setdefault((jit_compile, num_bins, name), []).append(rate)
                        print(
                            f"   round {round_index + 1}  {'XLA' if jit_compile else 'plain'}  K={num_bins:<3} "
                            f"{name:<10} {rate:6.0f} steps/s | {_common.load()}",
                            flush=True,
                        )
        print("\n## median steps/s over the rounds")
        print(f"   {'step':<6}{'bins':>5}{'tf.cumsum':>11}{'triangle':>10}{'ratio':>8}")
        for jit_compile in (True, False):
            for num_bins in (16, 32):
                old = statistics.median(rates[jit_compile, num_bins, "tf.cumsum"])
                new = statistics.median(rates[jit_compile, num_bins, "triangle"])
                step = "XLA" if jit_compile else "plain"
                print(f"   {step:<6}{num_bins:>5}{old:11.0f}{new:10.0f}{new / old:7.2f}x")
        print(f"# {_common.load()} at the end")


if __name__ == "__main__":
    main()

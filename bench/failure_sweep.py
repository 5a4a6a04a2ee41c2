"""Which small flows blow up, and how well the others train: the table notebook 07 shows.

Each configuration (normalisation layer, log-scale bound, learning rate) is trained with
``train.fit`` for 600 steps of batch 256 at a *constant* learning rate from 10 seeds, with
``max_retries=0`` so that the guard stops a run at its first non-finite loss (a failure is
a failure). The flows are small versions of the post's stack: 4 affine couplings with
hidden units (32, 32), swaps between them and, when there is a normalisation, one after
couplings 0 and 2 (the post's order, counted from the latent side). "TFP batch norm" is
``tfb.BatchNormalization`` in the TFP installed (since TFP 0.17 its training-mode
``log_prob`` uses the moving averages for the log-determinant, see notebook 07). The data:
100,000 training points of "Flow" and 10,000 held-out points.

Prints two markdown tables (copied into notebook 07, section 5) and the load. Slow:
about 100 training runs; run it in the background::

    nohup nice .venv/bin/python bench/failure_sweep.py > bench/results/failure_sweep.md 2> /tmp/sweep.err &
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import platform
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

NUM_LAYERS, HIDDEN, STEPS, BATCH, SEEDS = 4, (32, 32), 600, 256, range(10)
# Couplings followed by a normalisation layer, counted from the latent side: the post's
# order (0, 2), or (1, 3), next to the data, the order notebook 07 used before its rewrite.
ORDERS = {"post": (0, 2), "data-side": (1, 3)}
NORMALIZE_AFTER = ORDERS["post"]
NORMALIZATIONS = ["TFP batch norm", "flowlib batch norm", "ActNorm", "none"]
LEARNING_RATES = [1e-4, 1e-3, 3e-3, 1e-2]


def build(normalization: str, max_log_scale, seed: int):
    """(training flow, evaluation flow) of the small post-order stack."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    from flowlib import bijectors, flows

    tfb, tfd = tfp.bijectors, tfp.distributions
    if normalization != "TFP batch norm":
        name = {"flowlib batch norm": "batchnorm", "ActNorm": "actnorm", "none": "none"}[normalization]
        flow = flows.realnvp(
            num_layers=NUM_LAYERS,
            hidden_units=HIDDEN,
            normalization=name,
            normalize_after=NORMALIZE_AFTER,
            max_log_scale=max_log_scale,
            seed=seed,
        )
        return flow, flow
    training_layers, eval_layers = [], []
    for i in range(NUM_LAYERS):
        coupling = bijectors.AffineCoupling(
            bijectors.half_mask(2),
            hidden_units=HIDDEN,
            max_log_scale=max_log_scale,
            seed=seed * 1000 + i,
            name=f"affine_coupling_{i}",
        )
        training_layers.append(coupling)
        eval_layers.append(coupling)
        if i in NORMALIZE_AFTER:
            batch_norm = tfb.BatchNormalization(training=True)
            training_layers.append(batch_norm)
            eval_layers.append(tfb.BatchNormalization(batch_norm.batchnorm, training=False))
        if i < NUM_LAYERS - 1:
            permute = tfb.Permute([1, 0])
            training_layers.append(permute)
            eval_layers.append(permute)
    base = tfd.MultivariateNormalDiag(loc=tf.zeros(2), scale_diag=tf.ones(2))
    flow = tfd.TransformedDistribution(base, tfb.Chain(training_layers[::-1]))
    eval_flow = tfd.TransformedDistribution(base, tfb.Chain(eval_layers[::-1]))
    eval_flow.log_prob(tf.zeros([2, 2]))
    return flow, eval_flow


def run(configuration, x_train, x_test, entropy):
    import numpy as np

    from flowlib import metrics, train

    normalization, max_log_scale, learning_rate = configuration
    failures, steps, gaps = 0, [], []
    for seed in SEEDS:
        flow, eval_flow = build(normalization, max_log_scale, seed)
        with contextlib.redirect_stdout(io.StringIO()):
            history = train.fit(
                flow,
                x_train,
                steps=STEPS,
                batch_size=BATCH,
                learning_rate=learning_rate,
                schedule="constant",
                seed=seed,
                max_retries=0,
                steps_per_call=20,
                progress=False,
            )
        if history.stopped:
            failures += 1
            found = re.search(r"at step (\d+)", history.events[-1]) if history.events else None
            steps.append(int(found.group(1)) if found else history.steps)
        else:
            gaps.append(metrics.nll(eval_flow, x_test) - entropy)
    failed = f"{failures}/{len(SEEDS)}" + (f" (step {int(np.median(steps))})" if steps else "")
    gap = f"{np.median(gaps):.2f} (worst {np.max(gaps):.2f})" if gaps else "–"
    return failed, gap


def main(argv: list[str] | None = None) -> int:
    global NORMALIZE_AFTER
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--order",
        choices=sorted(ORDERS),
        default="post",
        help="where the normalisation layers sit (default: the post's order)",
    )
    NORMALIZE_AFTER = ORDERS[parser.parse_args(argv).order]
    import tensorflow as tf
    import tensorflow_probability as tfp

    from flowlib import data

    tf.get_logger().setLevel("ERROR")
    target = data.PictureDistribution.from_text("Flow")
    x_train, x_test = target.sample(100_000, seed=0), target.sample(20_000, seed=1)[:10_000]
    entropy = target.entropy()
    print(
        f"<!-- bench/failure_sweep.py | {datetime.datetime.now().isoformat(timespec='seconds')} | "
        f"{platform.machine()} | {os.cpu_count()} CPUs | TF {tf.__version__} | TFP {tfp.__version__} | "
        f"normalisation after couplings {NORMALIZE_AFTER} | "
        f"load at start {' '.join(f'{v:.2f}' for v in os.getloadavg())} -->\n",
        flush=True,
    )
    results = {}
    for norm in NORMALIZATIONS:
        for bound in (None, 2.0):
            results[(norm, bound, 1e-3)] = run((norm, bound, 1e-3), x_train, x_test, entropy)
    post, series = ("TFP batch norm", None), ("flowlib batch norm", 2.0)
    for rate in LEARNING_RATES:
        for stack in (post, series):
            if (*stack, rate) not in results:
                results[(*stack, rate)] = run((*stack, rate), x_train, x_test, entropy)
    print(
        "| normalisation (learning rate 1e-3) | failed, unbounded | gap, unbounded | failed, bounded (c = 2) "
        "| gap, bounded |"
    )
    print("|---|---:|---:|---:|---:|")
    for norm in NORMALIZATIONS:
        print(f"| {norm} | " + " | ".join([*results[(norm, None, 1e-3)], *results[(norm, 2.0, 1e-3)]]) + " |")
    print(
        "\n| learning rate | failed, TFP batch norm, unbounded | gap | failed, flowlib batch norm, c = 2 | gap |"
    )
    print("|---:|---:|---:|---:|---:|")
    for rate in LEARNING_RATES:
        print(f"| {rate:g} | " + " | ".join([*results[(*post, rate)], *results[(*series, rate)]]) + " |")
    print(f"\n<!-- load at end {' '.join(f'{v:.2f}' for v in os.getloadavg())} -->")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

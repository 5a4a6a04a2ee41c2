"""Where does a training step's time go? The ablation behind ``train.fit``'s speed-ups.

Every variant trains the same flow architecture with the same in-graph loop (100 steps
per compiled call, batches drawn inside the graph, as ``fit`` does); one thing changes
at a time:

- ``log_prob + keras Adam``: TFP's ``TransformedDistribution.log_prob``
  (``flow.tfp_log_prob``) and ``tf_keras.optimizers.Adam`` (fit before the optimisation);
- ``one-pass + keras Adam``: the loss from ``flow.log_prob``, the Flow's one pass (each
  coupling network evaluated once per layer instead of twice);
- ``log_prob + fused Adam``: ``train.Adam`` (one fused ``ResourceApplyAdam`` op per
  variable);
- ``one-pass + fused Adam``: both, which is what ``fit`` does now;
- ``... + XLA``: the same with ``jit_compile=True`` (fit's option);

then ``fit``'s step at several batch sizes (steps/s and points/s). Rates are medians
over interleaved rounds; "first call" is tracing, graph optimisation (or XLA
compilation) and 5 steps.

Not in the table, measured once on the headline flow (219 variables with Adam's
moments): the NaN guard used to copy the whole state out to numpy before each call and
check the weights there, 23 + 27 ms per call, about 15% of a 100-step call at ~300
steps/s. fit now takes the copy and the check inside the compiled call.

    .venv/bin/python bench/profile.py
    .venv/bin/python bench/profile.py --normalization batchnorm --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import _budget
import _common


def make_call(flow, x, *, one_pass: bool, fused: bool, jit: bool, batch_size: int):
    import tensorflow as tf
    import tf_keras

    from flowlib import flows, train

    if flows.actnorm_layers(flow):
        flows.initialize_actnorm(flow, x[:1024])
    flow.log_prob(x[:2])
    flows.set_training(flow, True)
    variables = flow.trainable_variables
    log_prob = flow.log_prob if one_pass else flow.tfp_log_prob  # TFP's two walks per layer
    if fused:
        optimizer = train.Adam(variables, 1e-3)
        apply = optimizer.apply
    else:
        optimizer = tf_keras.optimizers.Adam(1e-3)
        optimizer.build(variables)

        def apply(gradients):
            optimizer.apply_gradients(zip(gradients, variables))

    data = tf.constant(x)

    @tf.function(jit_compile=jit)
    def call(first, count):
        losses = tf.TensorArray(tf.float32, size=count)
        for i in tf.range(count):
            index = tf.random.stateless_uniform(
                [batch_size], seed=tf.stack([0, first + i]), maxval=len(x), dtype=tf.int32
            )
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(log_prob(tf.gather(data, index)))
            apply(tape.gradient(loss, variables))
            losses = losses.write(i, loss)
        return losses.stack()

    start = time.perf_counter()
    call(tf.constant(0), tf.constant(5)).numpy()
    return call, time.perf_counter() - start


def timed_rounds(calls: dict, rounds: int, steps: int) -> dict:
    import tensorflow as tf

    rates = {name: [] for name in calls}
    for round_index in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call(tf.constant(10_000 * (round_index + 1)), tf.constant(steps)).numpy()
            rates[name].append(steps / (time.perf_counter() - start))
    return rates


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--normalization", default=None, help="default: the headline's")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200, help="steps per timed round (default: %(default)s)")
    parser.add_argument("--no-xla", action="store_true", help="skip the XLA variant (slow to compile)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)

    config = _budget.headline()
    if args.normalization:
        config = config.replace(normalization=args.normalization)
    with _common.recorded("profile", enabled=not args.no_record):
        _common.header("profile: steps/s of fit's training step, one change at a time")
        print(f"# flow: {config.label()}")
        _, x, _ = _budget.data()
        variants = [
            ("log_prob + keras Adam", False, False, False),
            ("one-pass + keras Adam", True, False, False),
            ("log_prob + fused Adam", False, True, False),
            ("one-pass + fused Adam (fit)", True, True, False),
        ]
        if not args.no_xla:
            variants.append(("one-pass + fused Adam + XLA", True, True, True))
        calls, first = {}, {}
        for name, one_pass, fused, jit in variants:
            calls[name], first[name] = make_call(
                config.build(seed=0), x, one_pass=one_pass, fused=fused, jit=jit, batch_size=config.batch_size
            )
        rates = timed_rounds(calls, args.rounds, args.steps)
        reference = statistics.median(rates[variants[0][0]])
        print(
            f"\n## the step, batch {config.batch_size} ({args.rounds} interleaved rounds of {args.steps} steps)"
        )
        print(f"   {'variant':<30} {'steps/s':>8} {'speed-up':>9} {'first call':>11}   rounds")
        for name, *_ in variants:
            median = statistics.median(rates[name])
            print(
                f"   {name:<30} {median:8.1f} {median / reference:8.2f}x {first[name]:10.1f}s   "
                + " ".join(f"{r:.0f}" for r in rates[name])
            )
        print(f"   {_common.load()}")
        del calls

        print("\n## fit's step (one-pass + fused Adam) by batch size")
        calls, first = {}, {}
        for batch_size in (256, 512, 1024, 2048):
            calls[batch_size], first[batch_size] = make_call(
                config.build(seed=0), x, one_pass=True, fused=True, jit=False, batch_size=batch_size
            )
        rates = timed_rounds(calls, args.rounds, args.steps)
        print(f"   {'batch':>5} {'steps/s':>8} {'points/s':>9}")
        for batch_size in calls:
            median = statistics.median(rates[batch_size])
            print(f"   {batch_size:5d} {median:8.1f} {median * batch_size:9.0f}")
        print(f"# {_common.load()} at the end")


if __name__ == "__main__":
    main()

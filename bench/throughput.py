"""Training steps per second: flowlib's ``train.fit`` against TFP's stock RealNVP.

For each architecture, two flows of the same shape (depth, width of the coupling
networks, normalisation layers after every second coupling, the swap permutation in
between, the same batch size and Adam learning rate):

- **stock**: ``tfb.RealNVP`` layers whose networks are ``tf_keras`` Dense stacks of the
  same widths (``tfb.real_nvp_default_template`` would be the classic choice, but the
  flow does not track its variables: ``flow.trainable_variables`` comes back empty and
  the loop trains nothing, which is fast and meaningless), ``tfb.BatchNormalization`` (or, for ActNorm, a learned ``tfb.Shift`` and
  ``tfb.ScaleMatvecDiag``), ``tfb.Permute``, in a ``tfb.Chain``, trained the way a new
  user writes it: a ``tf.data`` pipeline (shuffle, batch, repeat, prefetch) and a
  ``@tf.function`` train step with ``tf_keras.optimizers.Adam`` called once per batch
  from Python;
- **flowlib**: ``flows.realnvp`` trained by ``train.fit`` (default steps_per_call=100,
  the NaN guard on). flowlib's couplings also bound their log-scale with a tanh, a little
  more work per step than the stock ones.

Timing: the rounds are interleaved (stock block, flowlib block, stock block, ...) so
both see the same load from other jobs; each block runs for about ``--block`` seconds
after compilation. flowlib's rate comes from ``History.times`` (calls 2 onwards), so
compilation is excluded for both; the one-time compile/first-call cost is reported
separately. The ratio is of the medians over rounds. On the headline architecture a
third contender, ``fit(jit_compile=True)`` (XLA), runs in the same rounds.

    .venv/bin/python bench/throughput.py               # 3 architectures, 3 rounds
    .venv/bin/python bench/throughput.py --quick       # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common


def architectures(quick: bool):
    from flowlib.recipe import AFFINE

    rows = [
        (
            "best affine recipe (recipe.AFFINE)",
            AFFINE.num_layers,
            AFFINE.hidden_units[0],
            AFFINE.normalization,
            AFFINE.batch_size,
        ),
        ("8x128 batch norm, batch 512", 8, 128, "batchnorm", 512),
        ("the post's recipe: 8x512 batch norm, batch 512", 8, 512, "batchnorm", 512),
    ]
    return rows[:2] if quick else rows


class _ShiftAndLogScale:
    """``fn(x1, output_units) -> (shift, log_scale)`` from a Keras network, for tfb.RealNVP."""

    def __init__(self, network):
        self.network = network

    def __call__(self, x1, output_units, **kwargs):
        import tensorflow as tf

        return tf.split(self.network(x1), 2, axis=-1)


def stock_flow(num_layers: int, width: int, normalization: str):
    """TFP's own layers in flowlib's order (forward: coupling_0, permute_0, coupling_1, norm_1, ...)."""
    import tensorflow as tf
    import tensorflow_probability as tfp
    import tf_keras

    tfb, tfd = tfp.bijectors, tfp.distributions
    forward_order = []
    for i in range(num_layers):
        network = tf_keras.Sequential(
            [
                tf_keras.layers.Dense(width, activation="relu"),
                tf_keras.layers.Dense(width, activation="relu"),
                tf_keras.layers.Dense(2),
            ],
            name=f"network_{i}",
        )
        network.build([None, 1])
        forward_order.append(
            tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=_ShiftAndLogScale(network), name=f"real_nvp_{i}")
        )
        if i % 2 == 1 and normalization == "batchnorm":
            forward_order.append(tfb.BatchNormalization(name=f"batch_norm_{i}"))
        elif i % 2 == 1 and normalization == "actnorm":
            log_scale = tf.Variable(tf.zeros([2]), name="log_scale")
            forward_order.append(
                tfb.Chain(
                    [
                        tfb.Shift(tf.Variable(tf.zeros([2]), name="shift")),
                        tfb.ScaleMatvecDiag(tfp.util.DeferredTensor(log_scale, tf.exp)),
                    ],
                    name=f"act_norm_{i}",
                )
            )
        if i < num_layers - 1:
            forward_order.append(tfb.Permute(permutation=[1, 0], name=f"permute_{i}"))
    base = tfd.MultivariateNormalDiag(loc=tf.zeros([2]), scale_diag=tf.ones([2]))
    flow = tfd.TransformedDistribution(base, tfb.Chain(list(reversed(forward_order))))
    # The bijectors do not track the networks behind a plain callable, so collect every
    # trainable variable explicitly (with tfb.real_nvp_default_template the flow's
    # trainable_variables is even empty: such a loop computes the loss and trains nothing).
    networks = [
        layer._shift_and_log_scale_fn.network for layer in forward_order if isinstance(layer, tfb.RealNVP)
    ]
    flow.all_trainable_variables = list(
        {
            id(v): v
            for v in list(flow.trainable_variables)
            + [v for network in networks for v in network.trainable_variables]
        }.values()
    )
    return flow


class StockTrainer:
    """The loop a new user writes: tf.data batches, one @tf.function step per batch."""

    def __init__(self, flow, x, batch_size: int, learning_rate: float = 1e-3):
        import tensorflow as tf
        import tf_keras

        self.flow = flow
        flow.log_prob(x[:2])  # creates the template networks' variables
        dataset = (
            tf.data.Dataset.from_tensor_slices(x)
            .shuffle(len(x), seed=0)
            .batch(batch_size, drop_remainder=True)
            .repeat()
            .prefetch(tf.data.AUTOTUNE)
        )
        self.batches = iter(dataset)
        optimizer = tf_keras.optimizers.Adam(learning_rate)
        variables = flow.all_trainable_variables
        self.num_parameters = sum(int(v.shape.num_elements()) for v in variables)

        @tf.function
        def train_step(batch):
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(flow.log_prob(batch))  # tfb.BatchNormalization trains by default
            gradients = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(gradients, variables))
            return loss

        self.train_step = train_step
        start = time.perf_counter()
        train_step(next(self.batches)).numpy()
        self.first_call = time.perf_counter() - start

    def run(self, steps: int) -> float:
        """Steps per second over ``steps`` steps."""
        start = time.perf_counter()
        for _ in range(steps):
            loss = self.train_step(next(self.batches))
        loss.numpy()
        return steps / (time.perf_counter() - start)


def flowlib_parameters(num_layers, width, normalization) -> int:
    from flowlib import flows

    return flows.num_parameters(
        flows.realnvp(num_layers=num_layers, hidden_units=(width, width), normalization=normalization)
    )


def flowlib_block(num_layers, width, normalization, batch_size, x, steps, seed=0, jit_compile=False):
    from flowlib import flows, train

    flow = flows.realnvp(
        num_layers=num_layers, hidden_units=(width, width), normalization=normalization, seed=seed
    )
    history = train.fit(
        flow,
        x,
        steps=steps,
        batch_size=batch_size,
        learning_rate=1e-3,
        seed=seed,
        progress=False,
        jit_compile=jit_compile,
    )
    times = history.times
    per_call = steps // len(times)
    rate = (len(times) - 1) * per_call / (times[-1] - times[0])
    return rate, times[0] - per_call / rate, history.rescues


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--block", type=float, default=10.0, help="seconds per timed block (default: %(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="2 architectures, 1 round, 3 s blocks")
    parser.add_argument(
        "--xla",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time fit(jit_compile=True) on the headline architecture (default: on)",
    )
    parser.add_argument("--first", type=int, default=None, help="only the first N architectures")
    parser.add_argument("--name", default="throughput", help="results file bench/results/NAME.txt")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.block = 1, 3.0

    from flowlib.data import PictureDistribution

    with _common.recorded(args.name, enabled=not (args.no_record or args.quick)):
        _common.header("throughput: training steps per second, flowlib's fit vs TFP's stock RealNVP")
        print(__doc__.split("\n\n", 1)[1].split("\n\n    .venv")[0])
        x = PictureDistribution.from_text("Flow").sample(100_000, seed=0)
        flowlib_block(2, 8, "none", 256, x, steps=200)  # warm-up: one-time costs of the process
        summary = []
        for label, num_layers, width, normalization, batch_size in architectures(args.quick)[: args.first]:
            print(
                f"\n## {label}: {num_layers} couplings, hidden ({width}, {width}), {normalization}, "
                f"batch {batch_size}"
            )
            stock = StockTrainer(stock_flow(num_layers, width, normalization), x, batch_size)
            probe = stock.run(20)
            stock_steps = max(20, int(probe * args.block))
            print(
                f"   stock first call (tracing) {stock.first_call:.1f} s; trainable parameters: stock "
                f"{stock.num_parameters:,}, flowlib {flowlib_parameters(num_layers, width, normalization):,}"
            )
            stock_rates, flowlib_rates, fixed = [], [], []
            with_xla = args.xla and not summary  # the headline architecture only
            xla_rates, xla_fixed = ([], []) if with_xla else (None, None)
            flowlib_steps = None
            for round_index in range(args.rounds):
                stock_rates.append(stock.run(stock_steps))
                if flowlib_steps is None:  # sized from a first guess: 3x the stock rate
                    flowlib_steps = max(300, 100 * round(3 * stock_rates[-1] * args.block / 100))
                this_steps = flowlib_steps
                rate, first, rescues = flowlib_block(
                    num_layers, width, normalization, batch_size, x, this_steps, seed=round_index
                )
                flowlib_rates.append(rate)
                fixed.append(first)
                flowlib_steps = max(300, 100 * round(rate * args.block / 100) + 100)
                if xla_rates is not None:
                    xla_rate, xla_first, _ = flowlib_block(
                        num_layers,
                        width,
                        normalization,
                        batch_size,
                        x,
                        this_steps,
                        seed=round_index,
                        jit_compile=True,
                    )
                    xla_rates.append(xla_rate)
                    xla_fixed.append(xla_first)
                    print(
                        f"   round {round_index + 1}: flowlib with jit_compile=True {xla_rate:6.1f} steps/s "
                        f"(first call {xla_first:.1f} s) | ratio to stock {xla_rate / stock_rates[-1]:.2f}"
                    )
                print(
                    f"   round {round_index + 1}: stock {stock_rates[-1]:6.1f} steps/s ({stock_steps} steps) | "
                    f"flowlib {rate:6.1f} steps/s ({this_steps} steps, first call {first:.1f} s"
                    f"{', ' + str(rescues) + ' rescues' if rescues else ''}) | "
                    f"ratio {rate / stock_rates[-1]:.2f} | {_common.load()}",
                    flush=True,
                )
            s, f = statistics.median(stock_rates), statistics.median(flowlib_rates)
            print(
                f"   median: stock {s:.1f} steps/s, flowlib {f:.1f} steps/s, ratio {f / s:.2f}x "
                f"(per-round ratios {', '.join(f'{a / b:.2f}' for a, b in zip(flowlib_rates, stock_rates))})"
            )
            summary.append((label, s, f, stock.first_call, statistics.median(fixed)))
            if xla_rates:
                x_median = statistics.median(xla_rates)
                print(
                    f"   median with jit_compile=True: {x_median:.1f} steps/s, ratio {x_median / s:.2f}x, "
                    f"first call {statistics.median(xla_fixed):.1f} s"
                )
                summary.append(
                    (
                        "  same, fit(jit_compile=True)",
                        s,
                        x_median,
                        stock.first_call,
                        statistics.median(xla_fixed),
                    )
                )
        print("\n## summary (medians; steps/s; first call = tracing + graph optimisation, seconds)")
        print(
            f"   {'architecture':<48} {'stock':>7} {'flowlib':>8} {'ratio':>6} {'first call stock/flowlib':>25}"
        )
        for label, s, f, first_stock, first_flowlib in summary:
            print(f"   {label:<48} {s:7.1f} {f:8.1f} {f / s:5.2f}x {first_stock:11.1f} / {first_flowlib:.1f}")
        print(f"# {_common.load()} at the end")


if __name__ == "__main__":
    main()

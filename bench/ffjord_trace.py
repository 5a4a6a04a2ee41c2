"""The exact trace for ``tfb.FFJORD``: TFP's ``trace_jacobian_exact`` or flowlib's ``exact_trace``?

Both give the diagonal of the velocity's Jacobian, one backward pass per coordinate. TFP's
loops over the coordinates with a graph loop (``tfp.math.diag_jacobian``: a ``tf.while_loop``
of ``tf.gradients``); flowlib's unrolls that loop in Python. Inside an RK4 solve (itself a
graph loop) and a training step's gradient, the graph loop is one more level of nesting.

For each, on notebook 11's FFJORD (a 2-D ``VectorField(64, 64)``, 4 RK4 steps, batches of
256): the first call of a compiled gradient of the mean log-density (trace and graph
optimisation), then milliseconds per call afterwards (median of rounds, interleaved so both
see the same load), and the values of both against each other.

    .venv/bin/python bench/ffjord_trace.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common


def _gradient_of(flow, field):
    """The loss and its gradient, a closure (a Flow cannot be a tf.function argument)."""
    import tensorflow as tf

    def gradient(x):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(flow.log_prob(x))
        return loss, tape.gradient(loss, field.trainable_variables)

    return gradient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=10, help="calls per round")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    with _common.recorded("ffjord_trace", enabled=not args.no_record):
        _common.header("FFJORD's exact trace: TFP's graph loop against flowlib's unrolled loop")
        import numpy as np
        import tensorflow as tf
        import tensorflow_probability as tfp

        from flowlib import continuous
        from flowlib.flow import Flow

        tfb, tfd = tfp.bijectors, tfp.distributions
        field = continuous.VectorField(dim=2, hidden_units=(64, 64), seed=0)
        rng = np.random.default_rng(0)
        for variable in field.trainable_variables:  # a field that is not the identity
            variable.assign(rng.normal(scale=0.3, size=variable.shape).astype(np.float32))
        batch = tf.constant(rng.normal(size=(256, 2)).astype(np.float32))
        traces = {
            "TFP trace_jacobian_exact": tfb.ffjord.trace_jacobian_exact,
            "flowlib exact_trace": continuous.exact_trace,
        }
        gradients, first_call, values = {}, {}, {}
        for name, trace in traces.items():
            flow = Flow(
                [tfb.FFJORD(state_time_derivative_fn=field, ode_solve_fn=continuous.rk4_solver(4),
                            trace_augmentation_fn=trace)],
                tfd.MultivariateNormalDiag(tf.zeros(2)),
            )  # fmt: skip

            gradients[name] = tf.function(_gradient_of(flow, field), autograph=False)
            start = time.perf_counter()
            loss, grads = gradients[name](batch)
            first_call[name] = time.perf_counter() - start
            values[name] = (float(loss), [g.numpy() for g in grads])
        (loss_a, grads_a), (loss_b, grads_b) = values.values()
        largest = max(float(np.max(np.abs(a - b))) for a, b in zip(grads_a, grads_b))
        print(f"# loss {loss_a:.6f} against {loss_b:.6f}; largest gradient difference {largest:.1e}")

        per_call = {name: [] for name in traces}
        for _ in range(args.rounds):
            for name in traces:
                start = time.perf_counter()
                for _ in range(args.calls):
                    gradients[name](batch)[0].numpy()
                per_call[name].append(1000 * (time.perf_counter() - start) / args.calls)
        print(f"{'trace':<28} {'first call (s)':>15} {'ms per gradient':>16}")
        for name in traces:
            print(f"{name:<28} {first_call[name]:15.1f} {statistics.median(per_call[name]):16.1f}")
        tfp_name, ours = traces
        ratio = statistics.median(per_call[tfp_name]) / statistics.median(per_call[ours])
        print(f"# flowlib's step is {ratio:.2f}x as fast; {_common.load()} at the end")


if __name__ == "__main__":
    main()

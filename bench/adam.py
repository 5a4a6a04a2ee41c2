"""Which Adam is fastest inside ``train.fit``: flowlib's ``Adam`` or one of tf-keras'?

Three optimisers, the same update (betas 0.9 and 0.999, epsilon 1e-7), each driving the
same compiled training call of ``train.fit`` (the one-pass loss, the NaN guard, 100 steps
per call) on the headline flow:

- ``fused``: ``train.Adam``, one ``ResourceApplyAdam`` op per variable, nothing else;
- ``keras legacy``: ``tf_keras.optimizers.legacy.Adam`` (``apply_gradients``, whose dense
  update is also ``ResourceApplyAdam``, plus the distribution-strategy machinery);
- ``keras``: ``tf_keras.optimizers.Adam`` (the update spelled out in small ops).

Rounds are interleaved (fused, legacy, keras, fused, ...) so all see the same load; the
rate is from ``History.times`` (calls 2 onwards, compilation excluded).

    .venv/bin/python bench/adam.py
"""

from __future__ import annotations

import argparse
import statistics

import _common


class _KerasAdam:
    """A tf-keras Adam behind the interface fit uses: ``learning_rate``, ``variables``, ``apply``."""

    def __init__(self, variables, learning_rate: float, *, legacy: bool):
        import tf_keras

        self._targets = list(variables)
        if legacy:
            self._optimizer = tf_keras.optimizers.legacy.Adam(learning_rate=learning_rate, epsilon=1e-7)
            self._optimizer._create_all_weights(self._targets)
            self.learning_rate = self._optimizer._get_hyper("learning_rate")
            self._variables = list(self._optimizer.variables())
        else:
            self._optimizer = tf_keras.optimizers.Adam(learning_rate=learning_rate, epsilon=1e-7)
            self._optimizer.build(self._targets)
            self.learning_rate = self._optimizer.learning_rate
            self._variables = list(self._optimizer.variables)

    @property
    def variables(self):
        return self._variables

    def apply(self, gradients) -> None:
        self._optimizer.apply_gradients(zip(gradients, self._targets))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)

    from flowlib import recipe, train

    fused = train.Adam
    contenders = {
        "fused (train.Adam)": fused,
        "keras legacy Adam": lambda v, lr: _KerasAdam(v, lr, legacy=True),
        "keras Adam": lambda v, lr: _KerasAdam(v, lr, legacy=False),
    }
    config = recipe.HEADLINE
    with _common.recorded("adam", enabled=not args.no_record):
        _common.header("Adam inside train.fit: steps/s of the headline flow, interleaved rounds")
        print(f"# headline: {config.label()}; {args.steps} steps per run, 100 per call")
        import _budget

        _, x_train, _ = _budget.data()
        _budget.warm_up(x_train)
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        final: dict[str, list[float]] = {name: [] for name in contenders}
        try:
            for round_index in range(args.rounds):
                for name, make in contenders.items():
                    train.Adam = make
                    history = train.fit(
                        config.build(seed=0),
                        x_train,
                        steps=args.steps,
                        steps_per_call=100,
                        progress=False,
                        **config.fit_kwargs(),
                    )
                    times = history.times
                    rate = 100 * (len(times) - 1) / (times[-1] - times[0])
                    rates[name].append(rate)
                    final[name].append(sum(history.loss[-100:]) / 100)
                    print(
                        f"  round {round_index + 1} {name:<20} {rate:6.1f} steps/s  final loss "
                        f"{final[name][-1]:.4f} | {_common.load()}",
                        flush=True,
                    )
        finally:
            train.Adam = fused
        print()
        reference = statistics.median(rates["fused (train.Adam)"])
        for name in contenders:
            median = statistics.median(rates[name])
            print(
                f"{name:<20} median {median:6.1f} steps/s ({median / reference:.2f}x fused), "
                f"final training loss {statistics.mean(final[name]):.4f}"
            )
        print(f"# {_common.load()} at the end")


if __name__ == "__main__":
    main()

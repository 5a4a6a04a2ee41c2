"""Training for a fixed wall-clock budget, the way :mod:`bench.sweep` and :mod:`bench.quality` do it.

A cosine schedule needs to know when training ends, but the step rate on a shared
machine changes from minute to minute, so a number of steps fixed in advance either
stops before the rate has decayed or leaves part of the budget unused (a first version
sized the steps from a short calibration run and missed both ways by up to 25%). So
the runs use ``train.fit(..., max_seconds=budget, schedule_by_time=True)``: before each
compiled call of ``steps_per_call`` steps, fit sets the cosine's progress to the
fraction of the budget already spent, and the rate reaches zero when the time is up,
whatever the number of steps that fitted in. ``steps`` is only an upper bound.

The budget counts what a reader waits for: the whole call of ``fit`` (History.seconds),
compilation included; fit stops after the call that crosses it, so a run may overshoot
by one call (50 steps here). Evaluation afterwards is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import _common  # noqa: F401  (sets the log level and sys.path)


def Config(**fields):
    """A :class:`flowlib.recipe.Recipe` (the architecture and training settings of one run)."""
    from flowlib.recipe import Recipe

    return Recipe(**fields)


@dataclass
class Result:
    config: Recipe  # noqa: F821  (flowlib.recipe.Recipe)
    budget: float
    fixed_seconds: float
    rate: float
    steps: int
    seconds: float
    train_loss: float
    nll: float
    entropy: float
    gap: float
    standard_error: float
    rescues: int
    load_before: str
    load_after: str

    def line(self) -> str:
        return (
            f"{self.config.label()} | {self.rate:5.1f} steps/s, first call {self.fixed_seconds:4.1f} s, "
            f"{self.steps:5d} steps in {self.seconds:5.1f} s"
            f"{' +' + str(self.rescues) + ' rescues' if self.rescues else ''} | "
            f"NLL {self.nll:.3f} gap {self.gap:.3f} ± {self.standard_error:.3f} | {self.load_after}"
        )


def train_for_budget(
    config,
    budget: float,
    target,
    x_train,
    x_test,
    *,
    seed: int = 0,
    return_flow: bool = False,
    jit_compile: bool | None = None,
    steps: int | None = None,
):
    """Train ``config`` for ``budget`` seconds of ``fit`` and evaluate it on ``x_test``.

    With ``steps``, train for that many steps instead (cosine over the steps, no time
    budget): a comparison at equal steps, which the load of a shared machine cannot bias.
    ``jit_compile`` overrides the recipe's (None: the recipe's own).
    """
    import contextlib
    import io

    import numpy as np

    from flowlib import metrics, train

    load_before = _common.load()
    flow = config.build(seed=seed)
    fit_kwargs = config.fit_kwargs()
    if jit_compile is not None:
        fit_kwargs["jit_compile"] = jit_compile
    with contextlib.redirect_stdout(io.StringIO()):  # fit's "stopped: the time budget is spent"
        if steps is None:
            history = train.fit(
                flow,
                x_train,
                steps=1_000_000,
                steps_per_call=50,
                seed=seed,
                max_seconds=budget,
                schedule_by_time=True,
                progress=False,
                **fit_kwargs,
            )
        else:
            history = train.fit(
                flow,
                x_train,
                steps=steps,
                steps_per_call=50,
                seed=seed,
                progress=False,
                **fit_kwargs,
            )
    times = history.times
    rate = 50 * (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    result = metrics.evaluate(flow, target, x_test)
    out = Result(
        config=config,
        budget=budget,
        fixed_seconds=times[0] - 50 / rate,
        rate=rate,
        steps=history.steps,
        seconds=history.seconds,
        train_loss=float(np.mean(history.loss[-100:])),
        nll=result.nll,
        entropy=result.entropy,
        gap=result.gap,
        standard_error=result.standard_error,
        rescues=history.rescues,
        load_before=load_before,
        load_after=_common.load(),
    )
    return (out, flow, history) if return_flow else out


def warm_up(x_train) -> None:
    """Pay the one-time costs of a process (imports, TensorFlow's start, first traces of
    TFP's code) on a tiny flow, so that they do not count as the first run's fixed cost."""
    from flowlib import flows, train

    train.fit(flows.realnvp(num_layers=2, hidden_units=(8,)), x_train, steps=100, progress=False)


def data(text: str = "Flow", num_train: int = 100_000, num_test: int = 50_000, seed: int = 0):
    """The demo's data: ``(target, x_train, x_test)`` from the word ``text``."""
    from flowlib.data import PictureDistribution

    target = PictureDistribution.from_text(text)
    return target, target.sample(num_train, seed=seed), target.sample(num_test, seed=seed + 1)


def headline():
    """The headline flow: :data:`flowlib.recipe.HEADLINE`."""
    from flowlib.recipe import HEADLINE

    return HEADLINE

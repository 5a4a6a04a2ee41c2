"""Maximum-likelihood training of a flow, with a guard against non-finite losses.

Training minimises the average negative log-likelihood of the data,

.. math::  \\mathcal{L}(\\theta) = -\\frac{1}{B}\\sum_{b} \\log p_\\theta(x_b),

with Adam on random mini-batches. The steps run inside one compiled ``tf.function``
that performs ``steps_per_call`` steps per call (drawing its own batches from the data
kept on the device), so Python is not in the inner loop.

Two things make a step cheap on a laptop CPU (``bench/profile.py`` measures each):

- the loss walks the layers once, data to latent, and takes each layer's output and
  log-determinant from *one* call of its network (:func:`flowlib.flows.one_pass_log_prob`;
  ``TransformedDistribution.log_prob`` asks a coupling for ``inverse`` and for
  ``inverse_log_det_jacobian`` separately, which runs the network twice). It is the same
  number as ``flow.log_prob``; :func:`fit` checks that on the first batch and falls back
  to ``flow.log_prob``, with a warning, for flows it cannot handle;
- Adam is applied with TensorFlow's fused kernel, one operation per variable.

The guard: at the start of each call the complete state (weights, batch-norm statistics,
optimizer moments) is copied. If any loss of the call is NaN or infinite, or any weight
ends non-finite, that state is restored, the learning rate is halved, and the same steps
are tried again; after ``max_retries`` such rescues training stops. It never continues
from non-finite weights, and every rescue is printed and recorded in ``History.events``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlib import flows as _flows
from flowlib import recipe as _recipe
from flowlib import validation

tfd = tfp.distributions

Schedule = Literal["cosine", "constant"]

# fit's defaults are the affine recipe's optimiser settings (flowlib.recipe.AFFINE, chosen
# by bench/sweep.py; see README, "Defaults"): a learning rate that suits every layer kind
# of the series. The spline headline trains at its own, higher rate (recipe.SPLINE).
DEFAULT_LEARNING_RATE = _recipe.AFFINE.learning_rate
DEFAULT_BATCH_SIZE = _recipe.AFFINE.batch_size


@dataclass
class History:
    """What happened during :func:`fit`.

    Attributes:
        loss: training NLL (nats) of every step, in order.
        validation_steps, validation_nll: held-out NLL (nats) after each call, if
            ``validation_data`` was given.
        events: human-readable notes of every rescue (non-finite loss) and of a stop.
        learning_rate: the base learning rate at the end (halved once per rescue).
        steps: the number of steps completed.
        seconds: wall-clock time of the whole call of :func:`fit`, compilation included.
        times: seconds since the start of training at the end of each compiled call
            whose steps were kept (the first includes the compilation), one per call;
            differences of neighbours give the step rate.
        stopped: True if training ended early (too many rescues, or the time budget).
    """

    loss: list[float] = field(default_factory=list)
    validation_steps: list[int] = field(default_factory=list)
    validation_nll: list[float] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    learning_rate: float = float("nan")
    steps: int = 0
    seconds: float = 0.0
    stopped: bool = False
    times: list[float] = field(default_factory=list)

    @property
    def rescues(self) -> int:
        """How many times the guard restored the state after a non-finite loss."""
        return sum(event.startswith("rescue") for event in self.events)


class _Adam:
    """Adam (Kingma and Ba, 2015) with TensorFlow's fused kernel, one op per variable.

    The same update as ``tf_keras.optimizers.Adam`` (betas 0.9 and 0.999, epsilon 1e-7):
    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``. Keras spells it out in
    several small operations per variable, which on a CPU costs more than the maths of
    a small flow.
    """

    def __init__(
        self,
        variables,
        learning_rate: float,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ):
        self._targets = list(variables)
        self.learning_rate = tf.Variable(float(learning_rate), trainable=False, name="learning_rate")
        self.iterations = tf.Variable(0.0, trainable=False, name="iterations")
        self._m = [tf.Variable(tf.zeros_like(v), trainable=False, name="m") for v in self._targets]
        self._v = [tf.Variable(tf.zeros_like(v), trainable=False, name="v") for v in self._targets]
        self._constants = [tf.constant(beta_1), tf.constant(beta_2), tf.constant(epsilon)]

    @property
    def variables(self) -> list[tf.Variable]:
        return [self.learning_rate, self.iterations, *self._m, *self._v]

    def apply(self, gradients) -> None:
        beta_1, beta_2, epsilon = self._constants
        t = self.iterations.assign_add(1.0)
        beta_1_power, beta_2_power = tf.pow(beta_1, t), tf.pow(beta_2, t)
        for variable, m, v, gradient in zip(self._targets, self._m, self._v, gradients):
            if gradient is None:  # a variable the loss does not use
                continue
            tf.raw_ops.ResourceApplyAdam(
                var=variable.handle,
                m=m.handle,
                v=v.handle,
                beta1_power=beta_1_power,
                beta2_power=beta_2_power,
                lr=self.learning_rate,
                beta1=beta_1,
                beta2=beta_2,
                epsilon=epsilon,
                grad=tf.convert_to_tensor(gradient),
            )


def _forget_traced_tensors() -> None:
    """Empty TFP's global bijector cache, which otherwise keeps every traced graph alive.

    TFP remembers forward/inverse results in one process-wide table keyed by weak
    references to the inputs. Inside a ``tf.function`` those are graph tensors whose graph
    the cached outputs keep alive, so nothing is ever collected: each call of :func:`fit`
    leaked about 16 MB, and notebook 07's sweep of ~90 runs grew past 4 GB. The cache is
    only a shortcut, so emptying it is safe.
    """
    from tensorflow_probability.python.bijectors import bijector as tfp_bijector

    tfp_bijector.Bijector.__dict__["_cache"].clear()  # the unbound table: clears everything


def _check_data(flow: tfd.TransformedDistribution, data, name: str, min_points: int = 2) -> np.ndarray:
    return validation.points(data, name, dim=_flows.event_dim(flow), min_points=min_points)


def _check_count(value, name: str) -> int:
    return validation.positive_int(value, name)


def fit(
    flow: tfd.TransformedDistribution,
    data,
    *,
    steps: int = 3000,
    batch_size: int = DEFAULT_BATCH_SIZE,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    schedule: Schedule = "cosine",
    seed: int = 0,
    steps_per_call: int = 100,
    max_retries: int = 4,
    validation_data=None,
    max_seconds: float | None = None,
    jit_compile: bool = False,
    progress: bool = True,
    schedule_by_time: bool = False,
    callback: Callable[[int, np.ndarray], None] | None = None,
) -> History:
    """Train ``flow`` by maximum likelihood on ``data`` and return its :class:`History`.

    Args:
        flow: a flow from :mod:`flowlib.flows` (any ``TransformedDistribution`` whose
            variables are trainable works).
        data: points ``[num_points, dim]``, finite.
        steps: number of Adam steps (shortened under ``FLOWLIB_FAST=1``, see
            :mod:`flowlib.config`).
        batch_size: points per step, drawn with replacement (seeded).
        learning_rate: Adam's (peak) learning rate.
        schedule: ``"cosine"`` decays the rate to 0 over ``steps``; ``"constant"`` keeps it.
        seed: seeds the batches; the same seed gives the same batches.
        steps_per_call: steps per compiled call (also the granularity of the guard, the
            progress bar and validation).
        max_retries: rescues allowed before training stops.
        validation_data: optional held-out points; their NLL is recorded after each call.
        max_seconds: optional wall-clock budget; training stops after the call that
            exceeds it.
        jit_compile: compile the steps with XLA. On a 2-core CPU the headline flow then
            runs ~1.4x more steps per second, but the first call takes ~5-15 s longer
            and every call of a new length compiles again: worth it for runs of
            minutes, not for short ones (``bench/throughput.py``, ``bench/quality.py``).
        progress: show a progress bar (a widget in notebooks).
        callback: optional ``callback(step, losses)`` after each compiled call whose steps
            were kept: ``step`` is the number of steps done, ``losses`` the ``[count]``
            training losses of that call (e.g. for a live loss plot).
        schedule_by_time: with ``max_seconds``, let the cosine schedule run over the time
            budget: each call uses the larger of the fraction of ``steps`` done and the
            fraction of ``max_seconds`` spent, so the rate reaches 0 when the time is up
            even when the step rate is not known in advance (pass a generous ``steps``).
            The batches stay seeded, but the steps taken depend on the machine's speed.

    Batch-norm layers are in training mode during ``fit`` and in evaluation mode after.
    """
    flow = validation.flow(flow)
    steps = _check_count(steps, "steps")
    from flowlib import config

    steps = config.shortened(steps)  # fewer steps only under FLOWLIB_FAST=1 (see flowlib.config)
    batch_size = _check_count(batch_size, "batch_size")
    steps_per_call = _check_count(steps_per_call, "steps_per_call")
    max_retries = validation.non_negative_int(max_retries, "max_retries")
    learning_rate = validation.positive_float32(learning_rate, "learning_rate")
    schedule = validation.choice(schedule, "schedule", ("cosine", "constant"))
    seed = validation.seed(seed)
    max_seconds = validation.optional_positive_float(max_seconds, "max_seconds")
    for name, flag in (
        ("jit_compile", jit_compile),
        ("progress", progress),
        ("schedule_by_time", schedule_by_time),
    ):
        validation.boolean(flag, name)
    callback = validation.callable_or_none(callback, "callback")
    if schedule_by_time and max_seconds is None:
        raise ValueError("schedule_by_time=True needs a time budget: pass max_seconds as well")
    start = time.perf_counter()  # History.seconds and max_seconds count everything from here
    data = _check_data(flow, data, "data")
    if validation_data is not None:
        validation_data = _check_data(flow, validation_data, "validation_data", min_points=1)

    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    first_batch = data[rng.integers(len(data), size=min(len(data), max(batch_size, 1024)))]
    if any(not bool(layer.initialized.numpy()) for layer in _flows.actnorm_layers(flow)):
        _flows.initialize_actnorm(flow, first_batch)
    _flows.set_training(flow, False)
    reference = flow.log_prob(first_batch[:64]).numpy()  # also builds lazily created variables

    # The loss: flow.log_prob computed in one pass over the layers (flows.one_pass_log_prob)
    # when every layer supports it, after checking on the first points that it gives the
    # same numbers; otherwise flow.log_prob itself, with a warning (slower, same result).
    loss_log_prob = _flows.one_pass_log_prob(flow)
    if loss_log_prob is None:
        warnings.warn(
            f"fit: training with flow.log_prob, slower than the one-pass loss: "
            f"{_flows.one_pass_unsupported_reason(flow)}",
            stacklevel=2,
        )
    else:
        fused = loss_log_prob(tf.constant(first_batch[:64])).numpy()
        _flows.clear_caches(flow)
        if not np.allclose(fused, reference, rtol=1e-4, atol=1e-3 * (1.0 + np.abs(reference).max())):
            warnings.warn(
                "fit: the one-pass log-density differs from flow.log_prob on the first batch "
                f"(largest difference {np.abs(fused - reference).max():.3g}); training with "
                "flow.log_prob instead (slower)",
                stacklevel=2,
            )
            loss_log_prob = None
    if loss_log_prob is None:
        loss_log_prob = flow.log_prob

    variables = flow.trainable_variables
    optimizer = _Adam(variables, learning_rate)
    state = list(flow.variables) + optimizer.variables
    base_lr = tf.Variable(float(learning_rate), trainable=False, dtype=tf.float32)
    time_fraction = tf.Variable(0.0, trainable=False, dtype=tf.float32)  # schedule_by_time only

    if validation_data is not None:
        # Compiled, in evaluation mode: the same number as metrics.nll, without running
        # TFP eagerly over every held-out point after each call.
        evaluation_log_prob = tf.function(loss_log_prob, reduce_retracing=True, autograph=False)

        def validation_nll() -> float:
            parts = [
                evaluation_log_prob(tf.constant(validation_data[i : i + 16384])).numpy()
                for i in range(0, len(validation_data), 16384)
            ]
            return float(-np.mean(np.concatenate(parts).astype(np.float64)))

    data_tensor = tf.constant(data)
    num_points = len(data)
    total = float(steps)

    # The guard's copy of the state lives next to it and is taken inside the compiled
    # call, as is the check that the weights stayed finite: copying ~200 variables out
    # to numpy and checking them there cost ~15% of the time of a 100-step call.
    backups = [tf.Variable(v.read_value(), trainable=False, name="backup") for v in state]

    # autograph=False: the loop below is an explicit tf.while_loop, and nothing else needs
    # converting. With autograph on, TensorFlow rewrote the source of every layer method the
    # step calls, which took a third of the first call (about 4 s for 8 spline couplings).
    @tf.function(jit_compile=jit_compile, autograph=False)
    def train_call(first_step, num_steps):
        for backup, variable in zip(backups, state):
            backup.assign(variable)

        def one_step(i, losses):
            step = first_step + i
            index = tf.random.stateless_uniform(
                [batch_size], seed=tf.stack([seed, step]), maxval=num_points, dtype=tf.int32
            )
            batch = tf.gather(data_tensor, index)
            if schedule == "cosine":
                progress_fraction = tf.maximum(tf.cast(step, tf.float32) / total, time_fraction)
                optimizer.learning_rate.assign(base_lr * 0.5 * (1.0 + tf.cos(math.pi * progress_fraction)))
            else:
                optimizer.learning_rate.assign(base_lr)
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(loss_log_prob(batch))
            optimizer.apply(tape.gradient(loss, variables))
            return i + 1, losses.write(i, loss)

        _, losses = tf.while_loop(
            lambda i, _: i < num_steps,
            one_step,
            [tf.constant(0, tf.int32), tf.TensorArray(tf.float32, size=num_steps)],
        )
        weights_finite = tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in variables]))
        return losses.stack(), weights_finite

    history = History()
    bar = tqdm(total=steps, desc="training", unit="step", disable=not progress, leave=True)

    def report(message: str) -> None:
        history.events.append(message)
        (bar.write if progress else print)(message)

    step, retries = 0, 0
    _flows.set_training(flow, True)
    try:
        while step < steps:
            count = min(steps_per_call, steps - step)
            if schedule_by_time:
                time_fraction.assign(min(1.0, (time.perf_counter() - start) / max_seconds))
            losses, weights_finite = train_call(tf.constant(step, tf.int32), tf.constant(count, tf.int32))
            losses = losses.numpy()
            healthy = np.all(np.isfinite(losses)) and bool(weights_finite.numpy())
            if not healthy:
                bad = int(np.argmin(np.isfinite(losses))) if not np.all(np.isfinite(losses)) else count - 1
                for variable, backup in zip(state, backups):
                    variable.assign(backup)
                _flows.clear_caches(flow)
                if retries >= max_retries:
                    history.stopped = True
                    kept = (
                        f"kept {step} of {steps} steps (the weights after step {step}, all finite)"
                        if step
                        else f"kept 0 of {steps} steps (the weights are those before fit)"
                    )
                    report(
                        f"stopped: the loss was still {losses[bad]} after {retries} rescues; {kept}. "
                        f"Try a lower learning_rate, a smaller max_log_scale, or normalization='actnorm'."
                    )
                    break
                retries += 1
                base_lr.assign(base_lr * 0.5)
                report(
                    f"rescue {retries}: loss became {losses[bad]} at step {step + bad}; restored the "
                    f"weights of step {step} and halved the learning rate to {base_lr.numpy():.3g}"
                )
                continue
            history.loss.extend(float(v) for v in losses)
            history.times.append(time.perf_counter() - start)
            step += count
            bar.update(count)
            bar.set_postfix(nll=f"{losses.mean():.3f}")
            if callback is not None:
                callback(step, losses)
            if validation_data is not None:
                _flows.set_training(flow, False)
                history.validation_steps.append(step)
                history.validation_nll.append(validation_nll())
                _flows.set_training(flow, True)
            if max_seconds is not None and time.perf_counter() - start > max_seconds and step < steps:
                history.stopped = True
                report(f"stopped at step {step}: the time budget of {max_seconds:g} s is spent")
                break
    finally:
        bar.close()
        _flows.set_training(flow, False)
        _forget_traced_tensors()
    history.steps = step
    history.learning_rate = float(base_lr.numpy())
    history.seconds = time.perf_counter() - start
    return history

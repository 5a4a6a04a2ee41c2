"""Maximum-likelihood training of a flow, with a guard against non-finite losses.

Training minimises the average negative log-likelihood of the data,

.. math::  \\mathcal{L}(\\theta) = -\\frac{1}{B}\\sum_{b} \\log p_\\theta(x_b),

with Adam on random mini-batches. The steps run inside one compiled ``tf.function``
that performs ``steps_per_call`` steps per call (drawing its own batches from the data
kept on the device), so Python is not in the inner loop.

Two things make a step cheap on a laptop CPU (``bench/profile.py`` measures each):

- the loss is :meth:`Flow.log_prob <flowlib.flow.Flow.log_prob>`, which walks the layers
  once, data to latent, and takes each layer's output and log-determinant from *one* call
  of its network (TFP's ``TransformedDistribution.log_prob`` asks a coupling for
  ``inverse`` and for ``inverse_log_det_jacobian`` separately, which runs the network
  twice). A hand-built ``TransformedDistribution`` is converted to a Flow first
  (:func:`flowlib.flows.as_flow`), or refused with a ``TypeError`` naming the layer;
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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlib import flows as _flows
from flowlib import validation
from flowlib.flow import Flow, log_prob_in_chunks

tfd = tfp.distributions

Schedule = Literal["cosine", "constant"]

# fit's defaults: a learning rate and batch size that suit every layer kind of the series
# (bench/sweep.py; README, "Defaults"). The engine owns them; flowlib.recipe.AFFINE states
# the same optimiser settings (tests/test_train.py checks that they agree), and the spline
# headline trains at its own, higher rate (recipe.SPLINE).
DEFAULT_LEARNING_RATE = 7e-4
DEFAULT_BATCH_SIZE = 256


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


class Adam:
    """Adam (Kingma and Ba, 2015) with TensorFlow's fused kernel, one op per variable.

    Every flowlib trainer uses it (``fit``, ``variational.fit_reverse_kl``,
    ``dequantization.train_jointly``, ``continuous.fit_flow_matching``): set
    ``learning_rate`` (a variable), then ``apply(gradients)``, inside or outside a
    ``tf.function``. The same update as ``tf_keras.optimizers.Adam`` (betas 0.9 and 0.999, epsilon 1e-7):
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


@dataclass(frozen=True)
class _Plan:
    """The checked arguments of :func:`fit` (:func:`_check_arguments`)."""

    steps: int
    batch_size: int
    learning_rate: float
    schedule: Schedule
    seed: int
    steps_per_call: int
    max_retries: int
    max_seconds: float | None
    jit_compile: bool
    progress: bool
    schedule_by_time: bool
    callback: Callable[[int, np.ndarray], None] | None


def _check_arguments(**arguments) -> _Plan:
    """Every argument of :func:`fit` but the data, checked (:mod:`flowlib.validation`)."""
    steps = validation.positive_int(arguments["steps"], "steps")
    plan = _Plan(
        steps=steps,
        batch_size=validation.positive_int(arguments["batch_size"], "batch_size"),
        steps_per_call=validation.positive_int(arguments["steps_per_call"], "steps_per_call"),
        max_retries=validation.non_negative_int(arguments["max_retries"], "max_retries"),
        learning_rate=validation.positive_float32(arguments["learning_rate"], "learning_rate"),
        schedule=validation.choice(arguments["schedule"], "schedule", ("cosine", "constant")),
        seed=validation.seed(arguments["seed"]),
        max_seconds=validation.optional_positive_float(arguments["max_seconds"], "max_seconds"),
        jit_compile=validation.boolean(arguments["jit_compile"], "jit_compile"),
        progress=validation.boolean(arguments["progress"], "progress"),
        schedule_by_time=validation.boolean(arguments["schedule_by_time"], "schedule_by_time"),
        callback=validation.callable_or_none(arguments["callback"], "callback"),
    )
    if plan.schedule_by_time and plan.max_seconds is None:
        raise ValueError("schedule_by_time=True needs a time budget: pass max_seconds as well")
    return plan


def _check_data(flow: tfd.TransformedDistribution, data, name: str, min_points: int = 2) -> np.ndarray:
    return validation.points(data, name, dim=_flows.event_dim(flow), min_points=min_points)


def _ready(flow: Flow, data: np.ndarray, batch_size: int, seed: int) -> None:
    """Ready ``flow`` for training on a first seeded batch of ``data``: initialise unset
    actnorm layers on it, and evaluate the density once (eagerly, on 64 points) so that
    lazily created variables (TFP's batch norm builds its Keras layer on first use) exist
    before the optimizer lists them."""
    rng = np.random.default_rng(seed)
    first_batch = data[rng.integers(len(data), size=min(len(data), max(batch_size, 1024)))]
    if any(not bool(layer.initialized.numpy()) for layer in _flows.actnorm_layers(flow)):
        _flows.initialize_actnorm(flow, first_batch)
    flow.train(False)
    flow.log_prob(first_batch[:64])
    flow.clear_caches()


class _LearningRate:
    """Adam's rate at each step: the peak ``base`` (halved by the guard), cosine or constant.

    ``time_fraction`` (``schedule_by_time``) is the fraction of the time budget spent; the
    cosine uses the larger of it and the fraction of ``total_steps`` done.
    """

    def __init__(self, learning_rate: float, schedule: Schedule, total_steps: int):
        self.schedule = schedule
        self.total = float(total_steps)
        self.base = tf.Variable(float(learning_rate), trainable=False, dtype=tf.float32)
        self.time_fraction = tf.Variable(0.0, trainable=False, dtype=tf.float32)

    def at(self, step):
        """The rate of ``step`` (a tensor; called inside the compiled steps)."""
        if self.schedule == "cosine":
            progress_fraction = tf.maximum(tf.cast(step, tf.float32) / self.total, self.time_fraction)
            return self.base * 0.5 * (1.0 + tf.cos(math.pi * progress_fraction))
        return self.base

    def halve(self) -> None:
        self.base.assign(self.base * 0.5)


def _compile_steps(
    log_prob,
    optimizer: Adam,
    rate: _LearningRate,
    data: np.ndarray,
    batch_size: int,
    seed: int,
    jit_compile: bool = False,
    on_start: Callable[[], None] | None = None,
):
    """The step: ``call(first_step, num_steps)`` takes ``num_steps`` Adam steps on the loss
    ``-mean(log_prob(batch))`` in one compiled call, batch ``first_step + i`` drawn (with
    replacement) from ``data`` by a stateless generator seeded with ``(seed, step)``. It
    returns the ``[num_steps]`` losses and whether every trained weight is still finite.
    ``on_start`` runs inside the call before the steps (the guard's copy of the state).

    ``autograph=False``: the loop is an explicit ``tf.while_loop`` and nothing else needs
    converting. With autograph on, TensorFlow rewrote the source of every layer method the
    step calls, which took a third of the first call (about 4 s for 8 spline couplings).

    Where the first call goes (issue 21 asked why it costs about twice the loss gradient
    alone; measured by tracing with ``get_concrete_function`` and then running one step,
    single runs at load 4-9 on 2 cores, so +-30%): for the default RealNVP (12 couplings)
    the loss gradient alone traces in 5.2 s and its first run (TensorFlow's graph
    optimisation, Grappler, plus one step) takes 2.9 s; this step traces in 6.9 s and its
    first run takes 7.8 s. For the default spline flow: 12.1 + 7.3 s against 15.2 + 9.9 s.
    The guard's copy of the state (``on_start``) is not the cost (without it: 8.6 + 7.0 s
    and 10.8 + 10.0 s, within the noise). The difference is the graph around the gradient:
    ~100 fused Adam updates, the schedule and the batch draw inside a ``tf.while_loop``,
    traced once (+1.5-3 s) and optimised by Grappler as one larger graph on the first run
    (+2.5-5 s). Later calls of the same length reuse it (100 steps: 0.9 s). Not cut here:
    the remaining levers change the numbers (Grappler's rewrites) or the speed of every step.
    """
    variables = optimizer._targets
    data_tensor, num_points = tf.constant(data), len(data)

    def one_step(first_step, i, losses):
        step = first_step + i
        index = tf.random.stateless_uniform(
            [batch_size], seed=tf.stack([seed, step]), maxval=num_points, dtype=tf.int32
        )
        batch = tf.gather(data_tensor, index)
        optimizer.learning_rate.assign(rate.at(step))
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(log_prob(batch))
        optimizer.apply(tape.gradient(loss, variables))
        return i + 1, losses.write(i, loss)

    @tf.function(jit_compile=jit_compile, autograph=False)
    def call(first_step, num_steps):
        if on_start is not None:
            on_start()
        _, losses = tf.while_loop(
            lambda i, _: i < num_steps,
            lambda i, losses: one_step(first_step, i, losses),
            [tf.constant(0, tf.int32), tf.TensorArray(tf.float32, size=num_steps)],
        )
        weights_finite = tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in variables]))
        return losses.stack(), weights_finite

    return call


class _Guard:
    """The rescue from non-finite losses: copy the state, and on a bad call restore it.

    ``save()`` copies ``state`` (weights, batch-norm statistics, optimizer moments) into
    backups; it runs inside the compiled call, as does the check that the weights stayed
    finite: copying ~200 variables out to numpy and checking them there cost ~15% of the
    time of a 100-step call. :meth:`judge` decides what happens to a finished call.
    """

    def __init__(self, flow, state, rate: _LearningRate, max_retries: int, report: Callable[[str], None]):
        self.flow, self.state, self.rate = flow, list(state), rate
        self.max_retries, self.report, self.retries = max_retries, report, 0
        self.backups = [tf.Variable(v.read_value(), trainable=False, name="backup") for v in self.state]

    def save(self) -> None:
        for backup, variable in zip(self.backups, self.state):
            backup.assign(variable)

    def judge(self, losses: np.ndarray, weights_finite: bool, step: int, steps: int) -> str:
        """``"keep"`` a healthy call; else restore the saved state and ``"retry"`` at half
        the rate, or ``"stop"`` once ``max_retries`` rescues are spent. ``step`` is the
        number of steps kept before the call, ``steps`` the number asked for."""
        finite = np.isfinite(losses)
        if np.all(finite) and weights_finite:
            return "keep"
        bad = int(np.argmin(finite)) if not np.all(finite) else len(losses) - 1
        for variable, backup in zip(self.state, self.backups):
            variable.assign(backup)
        _flows.clear_caches(self.flow)
        if self.retries >= self.max_retries:
            kept = (
                f"kept {step} of {steps} steps (the weights after step {step}, all finite)"
                if step
                else f"kept 0 of {steps} steps (the weights are those before fit)"
            )
            self.report(
                f"stopped: the loss was still {losses[bad]} after {self.retries} rescues; {kept}. "
                f"Try a lower learning_rate, a smaller max_log_scale, or normalization='actnorm'."
            )
            return "stop"
        self.retries += 1
        self.rate.halve()
        self.report(
            f"rescue {self.retries}: loss became {losses[bad]} at step {step + bad}; restored the "
            f"weights of step {step} and halved the learning rate to {self.rate.base.numpy():.3g}"
        )
        return "retry"


class _Progress:
    """The progress bar (a widget in notebooks) and the record of events in ``history``."""

    def __init__(self, history: History, steps: int, enabled: bool):
        from tqdm.auto import tqdm

        self.history, self.enabled = history, enabled
        self.bar = tqdm(total=steps, desc="training", unit="step", disable=not enabled, leave=True)

    def report(self, message: str) -> None:
        self.history.events.append(message)
        (self.bar.write if self.enabled else print)(message)

    def advance(self, count: int, losses: np.ndarray) -> None:
        self.bar.update(count)
        self.bar.set_postfix(nll=f"{losses.mean():.3f}")

    def finish_at(self, steps: int) -> None:
        """Training ends at ``steps`` (a spent time budget): the bar ends full at what ran."""
        self.bar.total = steps
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _validator(flow: Flow, validation_data: np.ndarray) -> Callable[[], float]:
    """The held-out NLL in evaluation mode, compiled: the same number as
    :func:`flowlib.metrics.nll` (the same chunked helper), without eager layer calls."""
    compiled = tf.function(flow.log_prob, reduce_retracing=True, autograph=False)
    return lambda: float(-np.mean(log_prob_in_chunks(flow, validation_data, log_prob=compiled)))


def _loop(
    call,
    guard: _Guard,
    rate: _LearningRate,
    plan: _Plan,
    progress: _Progress,
    start: float,
    validation_nll: Callable[[], float] | None = None,
) -> int:
    """Compiled calls until ``plan.steps`` steps are kept, the guard gives up or the time
    budget is spent; records losses, times, validation and a stop in ``progress.history``.
    Returns the number of steps kept."""
    history, step = progress.history, 0
    loop_start = time.perf_counter()
    # schedule_by_time: the cosine runs over the budget left once the set-up (checks, actnorm,
    # lazy variables) is done, and the first call always starts it at the peak rate. Measured
    # from `start` instead, a set-up that ate the budget gave one call at rate 0: steps counted,
    # nothing learnt (seen in notebook 11 on a loaded machine).
    budget_left = None if plan.max_seconds is None else plan.max_seconds - (loop_start - start)
    while step < plan.steps:
        count = min(plan.steps_per_call, plan.steps - step)
        if plan.schedule_by_time:
            spent = time.perf_counter() - loop_start
            rate.time_fraction.assign(0.0 if step == 0 or budget_left <= 0 else min(1.0, spent / budget_left))
        losses, weights_finite = call(tf.constant(step, tf.int32), tf.constant(count, tf.int32))
        losses = losses.numpy()
        verdict = guard.judge(losses, bool(weights_finite.numpy()), step, plan.steps)
        if verdict == "stop":
            history.stopped = True
            break
        if verdict == "retry":
            continue
        history.loss.extend(float(v) for v in losses)
        history.times.append(time.perf_counter() - start)
        step += count
        progress.advance(count, losses)
        if plan.callback is not None:
            plan.callback(step, losses)
        if validation_nll is not None:
            history.validation_steps.append(step)
            history.validation_nll.append(validation_nll())
        if (
            plan.max_seconds is not None
            and time.perf_counter() - start > plan.max_seconds
            and step < plan.steps
        ):
            history.stopped = True
            progress.report(f"stopped at step {step}: the time budget of {plan.max_seconds:g} s is spent")
            progress.finish_at(step)
            break
    return step


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
        flow: a :class:`~flowlib.flow.Flow` (every builder of :mod:`flowlib.flows` returns
            one); a hand-built ``TransformedDistribution`` of layers a Flow takes is converted
            (:func:`flowlib.flows.as_flow`, same variables), others are refused (``TypeError``).
        data: points ``[num_points, dim]``, finite.
        steps: number of Adam steps.
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
            runs ~1.4x more steps per second (459 against 328 for the affine recipe in
            ``bench/results/quality_affine_xla_tf219.txt`` and ``quality_affine_tf219.txt``),
            but the first call takes ~5-15 s longer
            and every call of a new length compiles again: worth it for runs of
            minutes, not for short ones (``bench/throughput.py``, ``bench/quality.py``).
        progress: show a progress bar (a widget in notebooks).
        callback: optional ``callback(step, losses)`` after each compiled call whose steps
            were kept: ``step`` is the number of steps done, ``losses`` the ``[count]``
            training losses of that call (e.g. for a live loss plot).
        schedule_by_time: with ``max_seconds``, let the cosine schedule run over the time
            budget: each call uses the larger of the fraction of ``steps`` done and the
            fraction spent of the budget left when training starts (after the checks and
            set-up), so the rate reaches 0 when the time is up even when the step rate is
            not known in advance (pass a generous ``steps``). The first call always runs at
            the peak rate, so a budget already spent by the set-up still trains one call.
            The batches stay seeded, but the steps taken depend on the machine's speed.

    Batch-norm layers are in training mode during ``fit`` and in evaluation mode after.

    The parts, each usable alone: :func:`_ready` (actnorm initialisation, lazy variables),
    :func:`_compile_steps` (the compiled steps), :class:`_Guard` (the rescue),
    :class:`_LearningRate` (the schedule) and :func:`_loop` (calls, budget, progress, history).
    """
    flow = _flows.as_flow(validation.flow(flow))
    arguments = {k: v for k, v in locals().items() if k not in ("flow", "data", "validation_data")}
    plan = _check_arguments(**arguments)  # every argument but the data (checked next, timed)
    start = time.perf_counter()  # History.seconds and max_seconds count everything from here
    data = _check_data(flow, data, "data")
    if validation_data is not None:
        validation_data = _check_data(flow, validation_data, "validation_data", min_points=1)
    _ready(flow, data, plan.batch_size, plan.seed)
    optimizer = Adam(flow.trainable_variables, plan.learning_rate)
    rate = _LearningRate(plan.learning_rate, plan.schedule, plan.steps)
    history = History()
    progress = _Progress(history, plan.steps, plan.progress)
    guard = _Guard(flow, list(flow.variables) + optimizer.variables, rate, plan.max_retries, progress.report)
    call = _compile_steps(
        flow.log_prob, optimizer, rate, data, plan.batch_size, plan.seed, plan.jit_compile, guard.save
    )
    validation_nll = None if validation_data is None else _validator(flow, validation_data)
    flow.train(True)
    try:
        history.steps = _loop(call, guard, rate, plan, progress, start, validation_nll)
    finally:
        progress.close()
        flow.train(False)
        _forget_traced_tensors()
    history.learning_rate = float(rate.base.numpy())
    history.seconds = time.perf_counter() - start
    return history

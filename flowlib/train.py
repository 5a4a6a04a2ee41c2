"""Maximum-likelihood training of a flow, with a guard against non-finite losses.

Training minimises the average negative log-likelihood of the data,

.. math::  \\mathcal{L}(\\theta) = -\\frac{1}{B}\\sum_{b} \\log p_\\theta(x_b),

with Adam on random mini-batches. The steps run inside one compiled ``tf.function``
that performs ``steps_per_call`` steps per call (drawing its own batches from the data
kept on the device), so Python is not in the inner loop.

The guard: before each call the complete state (weights, batch-norm statistics,
optimizer moments) is copied. If any loss of the call is NaN or infinite, or any weight
ends non-finite, that state is restored, the learning rate is halved, and the same steps
are tried again; after ``max_retries`` such rescues training stops. It never continues
from non-finite weights, and every rescue is printed and recorded in ``History.events``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlib import flows as _flows

tfd = tfp.distributions

Schedule = Literal["cosine", "constant"]

# Defaults chosen by the sweep in bench/sweep.py (see README, "Defaults").
DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_BATCH_SIZE = 512


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
        seconds: wall-clock time of training, compilation included.
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

    @property
    def rescues(self) -> int:
        """How many times the guard restored the state after a non-finite loss."""
        return sum(event.startswith("rescue") for event in self.events)


def _optimizer_variables(optimizer) -> list[tf.Variable]:
    variables = optimizer.variables
    return list(variables() if callable(variables) else variables)


def _check_data(flow: tfd.TransformedDistribution, data, name: str) -> np.ndarray:
    dim = _flows.event_dim(flow)
    array = np.asarray(data.numpy() if tf.is_tensor(data) else data)
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[1] != dim:
        raise ValueError(f"{name} must have shape [num_points, {dim}] to match the flow, got {array.shape}")
    if array.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 points, got {array.shape[0]}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array.astype(np.float32)


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def fit(flow: tfd.TransformedDistribution, data, *, steps: int = 3000,
        batch_size: int = DEFAULT_BATCH_SIZE, learning_rate: float = DEFAULT_LEARNING_RATE,
        schedule: Schedule = "cosine", seed: int = 0, steps_per_call: int = 100,
        max_retries: int = 4, validation_data=None, max_seconds: float | None = None,
        jit_compile: bool = False, progress: bool = True) -> History:
    """Train ``flow`` by maximum likelihood on ``data`` and return its :class:`History`.

    Args:
        flow: a flow from :mod:`flowlib.flows` (any ``TransformedDistribution`` whose
            variables are trainable works).
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
        jit_compile: compile the steps with XLA.
        progress: show a progress bar (a widget in notebooks).

    Batch-norm layers are in training mode during ``fit`` and in evaluation mode after.
    """
    steps = _check_count(steps, "steps")
    batch_size = _check_count(batch_size, "batch_size")
    steps_per_call = _check_count(steps_per_call, "steps_per_call")
    if isinstance(max_retries, bool) or not isinstance(max_retries, (int, np.integer)) or max_retries < 0:
        raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds!r}")
    data = _check_data(flow, data, "data")
    if validation_data is not None:
        validation_data = _check_data(flow, validation_data, "validation_data")

    import tf_keras  # TFP works with Keras 2 (tf-keras), not Keras 3
    from tqdm.auto import tqdm

    from flowlib.metrics import nll as _nll

    rng = np.random.default_rng(seed)
    first_batch = data[rng.integers(len(data), size=min(len(data), max(batch_size, 1024)))]
    if any(not bool(layer.initialized.numpy()) for layer in _flows.actnorm_layers(flow)):
        _flows.initialize_actnorm(flow, first_batch)
    _flows.set_training(flow, False)
    flow.log_prob(first_batch[:2])  # builds lazily created variables (batch norm)

    variables = flow.trainable_variables
    optimizer = tf_keras.optimizers.Adam(learning_rate=learning_rate)
    optimizer.build(variables)
    state = list(flow.variables) + _optimizer_variables(optimizer)
    base_lr = tf.Variable(float(learning_rate), trainable=False, dtype=tf.float32)

    data_tensor = tf.constant(data)
    num_points = len(data)
    total = float(steps)

    @tf.function(jit_compile=jit_compile)
    def train_call(first_step, num_steps):
        losses = tf.TensorArray(tf.float32, size=num_steps)
        for i in tf.range(num_steps):
            step = first_step + i
            index = tf.random.stateless_uniform([batch_size], seed=tf.stack([seed, step]),
                                                maxval=num_points, dtype=tf.int32)
            batch = tf.gather(data_tensor, index)
            if schedule == "cosine":
                progress_fraction = tf.cast(step, tf.float32) / total
                optimizer.learning_rate.assign(base_lr * 0.5 * (1.0 + tf.cos(math.pi * progress_fraction)))
            else:
                optimizer.learning_rate.assign(base_lr)
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(flow.log_prob(batch))
            gradients = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(gradients, variables))
            losses = losses.write(i, loss)
        return losses.stack()

    history = History()
    bar = tqdm(total=steps, desc="training", unit="step", disable=not progress, leave=True)

    def report(message: str) -> None:
        history.events.append(message)
        (bar.write if progress else print)(message)

    start = time.perf_counter()
    step, retries = 0, 0
    _flows.set_training(flow, True)
    try:
        while step < steps:
            count = min(steps_per_call, steps - step)
            saved = [v.numpy() for v in state]
            losses = train_call(tf.constant(step, tf.int32), tf.constant(count, tf.int32)).numpy()
            healthy = np.all(np.isfinite(losses)) and all(
                np.all(np.isfinite(v.numpy())) for v in variables)
            if not healthy:
                bad = int(np.argmin(np.isfinite(losses))) if not np.all(np.isfinite(losses)) else count - 1
                for variable, value in zip(state, saved):
                    variable.assign(value)
                _flows.clear_caches(flow)
                if retries >= max_retries:
                    history.stopped = True
                    report(f"stopped at step {step + bad}: the loss was still {losses[bad]} after "
                           f"{retries} rescues; weights are those of step {step}, all finite. "
                           f"Try a lower learning_rate, a smaller max_log_scale, or normalization='actnorm'.")
                    break
                retries += 1
                base_lr.assign(base_lr * 0.5)
                report(f"rescue {retries}: loss became {losses[bad]} at step {step + bad}; restored the "
                       f"weights of step {step} and halved the learning rate to {base_lr.numpy():.3g}")
                continue
            history.loss.extend(float(v) for v in losses)
            step += count
            bar.update(count)
            bar.set_postfix(nll=f"{losses.mean():.3f}")
            if validation_data is not None:
                _flows.set_training(flow, False)
                history.validation_steps.append(step)
                history.validation_nll.append(_nll(flow, validation_data))
                _flows.set_training(flow, True)
            if max_seconds is not None and time.perf_counter() - start > max_seconds and step < steps:
                history.stopped = True
                report(f"stopped at step {step}: the time budget of {max_seconds:g} s is spent")
                break
    finally:
        bar.close()
        _flows.set_training(flow, False)
    history.steps = step
    history.learning_rate = float(base_lr.numpy())
    history.seconds = time.perf_counter() - start
    return history

"""Flows as samplers: training a flow on an unnormalised density by the reverse KL divergence.

Given only a function ``log p~(x) = log p(x) + log Z`` (the normalising constant ``Z``
unknown), a flow ``q`` is trained to sample from ``p`` by minimising (Rezende and Mohamed,
2015, *Variational Inference with Normalizing Flows*)

.. math::  \\mathrm{KL}(q \\| p) = \\mathbb{E}_{x \\sim q}[\\log q(x) - \\log \\tilde p(x)] + \\log Z,

estimated on the flow's own samples. With ``x = f(z)``, ``z ~ N(0, I)`` (the
reparameterisation) the expectation is over the fixed base, so its gradient is the mean
gradient of ``log q(f(z)) - log p~(f(z))``; ``log Z`` is a constant and has none.

Each sample needs ``log q`` of itself, which :func:`sample_and_log_prob` gets in one walk
from latent to data: ``log q(x) = log N(z) - sum_k log|det J_k|``, each layer's output and
log-determinant from one call of its ``forward_and_log_det``. That walk is one network
pass per layer for couplings and IAF (Kingma et al., 2016), but ``dim`` passes per layer
for MAF, whose forward direction is sequential (see :mod:`flowlib.autoregressive`).
TFP's ``TransformedDistribution.experimental_sample_and_log_prob`` takes the same route
but asks each layer for ``forward`` and then ``forward_log_det_jacobian`` separately (TFP
0.25, ``transformed_distribution.py``, ``_sample_and_log_prob``), i.e. twice.

The trainer :func:`fit_reverse_kl` mirrors :func:`flowlib.train.fit`: Adam, a cosine
schedule, compiled calls of ``steps_per_call`` steps, a progress bar, and a guard that
restores the last good weights (and halves the learning rate) when a loss or weight turns
NaN or infinite, stopping after ``max_retries`` rescues. :func:`grid_kl` measures the
result exactly on a grid, in both directions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlib import flows as _flows
from flowlib import validation
from flowlib.train import Adam, History

tfb, tfd = tfp.bijectors, tfp.distributions

LogDensity = Callable[[tf.Tensor], tf.Tensor]

DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_BATCH_SIZE = 256


# --------------------------------------------------------------------------- sampling and scoring
def _forward_and_log_det(layer: tfb.Bijector, h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(layer.forward(h), log|det J|)`` for a vector layer; flowlib layers in one call."""
    one_call = getattr(layer, "forward_and_log_det", None)
    if callable(one_call):
        return one_call(h)
    log_det = layer.forward_log_det_jacobian(h, event_ndims=1)
    return layer.forward(h), tf.broadcast_to(log_det, tf.shape(h)[:-1])


def sample_and_log_prob(
    flow: tfd.TransformedDistribution, num_samples: int, *, seed
) -> tuple[tf.Tensor, tf.Tensor]:
    """``(x, log q(x))``: ``num_samples`` samples of ``flow`` and the flow's log-density at them.

    One walk from the base to the data: ``z ~ base``, then each layer's output and
    log-determinant together, ``log q(x) = log base(z) - sum_k log|det J_k(h_k)|``.
    ``x``: ``[num_samples, dim]``, ``log q``: ``[num_samples]``. ``seed``: an integer ``s``
    (used as the stateless seed ``[s, 0]``, so the same integer gives the same samples), or
    a stateless seed (a ``[2]`` integer tensor, e.g. inside a compiled loop). The result is
    differentiable with respect to the flow's weights (the reparameterisation trick).
    """
    validation.flow(flow)
    if not tf.is_tensor(seed):
        seed = tf.constant([validation.seed(seed), 0], tf.int32)
    z = flow.distribution.sample(num_samples, seed=seed)
    log_q = flow.distribution.log_prob(z)
    h = z
    for layer in _flows.layers(flow):
        h, log_det = _forward_and_log_det(layer, h)
        log_q = log_q - log_det
    return h, log_q


def reverse_kl_loss(
    flow: tfd.TransformedDistribution, log_unnormalized_density: LogDensity, num_samples: int, *, seed
) -> tf.Tensor:
    """Monte-Carlo estimate of ``KL(q || p) - log Z = E_q[log q(x) - log p~(x)]``, a scalar.

    ``log_unnormalized_density`` maps points ``[n, dim]`` to ``[n]``. The estimate is
    unbiased for ``KL(q || p) - log Z`` and its gradient for ``grad KL(q || p)``.
    """
    x, log_q = sample_and_log_prob(flow, num_samples, seed=seed)
    return tf.reduce_mean(log_q - log_unnormalized_density(x))


# --------------------------------------------------------------------------- training
def fit_reverse_kl(
    flow: tfd.TransformedDistribution,
    log_unnormalized_density: LogDensity,
    *,
    steps: int = 2000,
    batch_size: int = DEFAULT_BATCH_SIZE,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    seed: int = 0,
    steps_per_call: int = 100,
    max_retries: int = 4,
    progress: bool = True,
) -> History:
    """Train ``flow`` to sample from ``p ∝ exp(log_unnormalized_density)``; return a :class:`flowlib.train.History`.

    Args:
        flow: a flow from :mod:`flowlib.flows` (an IAF or a coupling flow samples and
            scores in one pass; a MAF costs ``dim`` passes per layer to sample).
        log_unnormalized_density: ``x [n, dim] -> log p~(x) [n]``, written in TensorFlow
            (it is differentiated and compiled); any constant offset is allowed.
        steps: Adam steps (in the series' quick test runs, fewer).
        batch_size: the flow's own samples per step.
        learning_rate: Adam's peak rate, decayed to 0 by a cosine schedule.
        seed: seeds the samples of every step (step ``i`` uses the stateless seed
            ``[seed, i]``), so the same seed repeats the run.
        steps_per_call: steps per compiled call (the granularity of the guard and the bar).
        max_retries: rescues allowed before training stops.
        progress: show a progress bar.

    A call whose losses or final weights are not all finite is undone (weights and
    Adam's moments restored to the start of the call), the learning rate halved and the
    call repeated; after ``max_retries`` rescues training stops with the last good
    weights. Every rescue and stop is printed and recorded in ``History.events``.
    """
    flow = validation.flow(flow)
    log_unnormalized_density = validation.log_density(log_unnormalized_density, "log_unnormalized_density")
    steps = validation.positive_int(steps, "steps")
    batch_size = validation.positive_int(batch_size, "batch_size")
    learning_rate = validation.positive_float32(learning_rate, "learning_rate")
    seed = validation.seed(seed)
    steps_per_call = validation.positive_int(steps_per_call, "steps_per_call")
    max_retries = validation.non_negative_int(max_retries, "max_retries")
    progress = validation.boolean(progress, "progress")
    variables = list(flow.trainable_variables)
    if not variables:
        raise ValueError("flow has no trainable variables: there is nothing to train")

    start = time.perf_counter()
    dim = int(flow.event_shape[0])
    probe = log_unnormalized_density(tf.zeros([3, dim]))
    if tuple(probe.shape) != (3,):
        raise ValueError(
            f"log_unnormalized_density must map points [n, {dim}] to [n]; for [3, {dim}] it gave "
            f"shape {tuple(probe.shape)}"
        )

    optimizer = Adam(variables, learning_rate)
    state = variables + optimizer.variables
    backups = [tf.Variable(v.read_value(), trainable=False) for v in state]
    base_rate = tf.Variable(learning_rate, trainable=False)
    total = tf.constant(float(steps))

    @tf.function(autograph=False)
    def one_step(i):
        with tf.GradientTape() as tape:
            loss = reverse_kl_loss(flow, log_unnormalized_density, batch_size, seed=tf.stack([seed, i]))
        gradients = tape.gradient(loss, variables)
        t = tf.cast(i, tf.float32) + 1.0
        rate = base_rate * 0.5 * (1.0 + tf.cos(np.pi * tf.minimum(t - 1.0, total) / total))
        optimizer.learning_rate.assign(rate)
        optimizer.apply(gradients)
        return loss

    @tf.function
    def call(first, count):
        for backup, variable in zip(backups, state):
            backup.assign(variable)
        losses = tf.TensorArray(tf.float32, size=count)
        for k in tf.range(count):
            losses = losses.write(k, one_step(first + k))
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables])
        return losses.stack(), finite

    from tqdm.auto import tqdm

    history = History()
    bar = tqdm(total=steps, desc="reverse KL", unit="step", disable=not progress, leave=True)

    def report(message: str) -> None:
        history.events.append(message)
        (bar.write if progress else print)(message)

    step, retries = 0, 0
    try:
        while step < steps:
            count = min(steps_per_call, steps - step)
            losses, finite = call(tf.constant(step), tf.constant(count))
            losses = losses.numpy()
            if np.all(np.isfinite(losses)) and bool(finite):
                history.loss.extend(float(v) for v in losses)
                step += count
                history.times.append(time.perf_counter() - start)
                bar.update(count)
                bar.set_postfix(loss=f"{losses.mean():.3f}")
                continue
            bad = int(np.argmin(np.isfinite(losses))) if not np.all(np.isfinite(losses)) else count - 1
            for backup, variable in zip(backups, state):
                variable.assign(backup)
            _flows.clear_caches(flow)
            if retries >= max_retries:
                report(
                    f"stopped: the loss was {losses[bad]} at step {step + bad} after {retries} rescues; "
                    f"kept the finite weights of step {step} of {steps}. Is log_unnormalized_density "
                    f"finite wherever the flow can put samples? Else try a lower learning_rate."
                )
                history.stopped = True
                break
            retries += 1
            base_rate.assign(base_rate * 0.5)
            report(
                f"rescue {retries}: loss became {losses[bad]} at step {step + bad}; restored the weights "
                f"of step {step} and halved the learning rate to {base_rate.numpy():.3g}"
            )
    finally:
        bar.close()
    history.steps = step
    history.learning_rate = float(base_rate.numpy())
    history.seconds = time.perf_counter() - start
    return history


# --------------------------------------------------------------------------- exact KL on a grid
def grid(extent: Sequence[float], resolution: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Cell centres of a ``resolution x resolution`` grid over ``extent = (left, right, bottom, top)``.

    Returns ``(points [resolution**2, 2], shape (resolution, resolution), cell_area)``; row
    ``i`` of the reshaped grid is the ``i``-th ``y`` from the bottom, column ``j`` the
    ``j``-th ``x`` from the left (the midpoint rule: a sum over cells times the area).
    """
    left, right, bottom, top = validation.extent(extent, "extent")
    resolution = validation.integer(resolution, "resolution", minimum=2)
    dx, dy = (right - left) / resolution, (top - bottom) / resolution
    xs = left + dx * (np.arange(resolution) + 0.5)
    ys = bottom + dy * (np.arange(resolution) + 0.5)
    points = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    return points.astype(np.float32), (resolution, resolution), dx * dy


def grid_kl(log_p: np.ndarray, log_q: np.ndarray, cell_area: float) -> tuple[float, float]:
    """``(KL(p || q), KL(q || p))`` in nats from two log-density grids on the same cells.

    ``log_p`` and ``log_q``: arrays of one shape, the log-densities at the cell centres
    (``-inf`` where a density is 0), each normalised on the grid here (``p_ij =
    exp(log_p_ij) / sum(exp(log_p) * cell_area)``, computed with log-sum-exp), so an
    unnormalised target is fine and far tails do not underflow. Both KLs are midpoint-rule
    sums: ``KL(p || q) = sum p (log p - log q) * cell_area``. A cell where ``q`` is 0 and
    ``p`` is not makes ``KL(p || q)`` infinite, as it should.
    """
    log_p = validation.array(log_p, "log_p", finite=False).astype(np.float64)
    log_q = validation.array(log_q, "log_q", finite=False).astype(np.float64)
    cell_area = validation.positive_float(cell_area, "cell_area")
    if log_p.shape != log_q.shape:
        raise ValueError(f"log_p and log_q must have the same shape, got {log_p.shape} and {log_q.shape}")
    for name, values in (("log_p", log_p), ("log_q", log_q)):
        if np.any(np.isnan(values)) or np.any(values == np.inf) or not np.any(np.isfinite(values)):
            raise ValueError(f"{name} must hold finite values or -inf (density 0), and not only -inf")

    def normalised(log_density: np.ndarray) -> np.ndarray:
        top = log_density[np.isfinite(log_density)].max()
        return log_density - (top + np.log(np.sum(np.exp(log_density - top)) * cell_area))

    log_p, log_q = normalised(log_p), normalised(log_q)

    def kl(log_a: np.ndarray, log_b: np.ndarray) -> float:
        inside = np.isfinite(log_a)
        return float(np.sum(np.exp(log_a[inside]) * (log_a[inside] - log_b[inside])) * cell_area)

    return kl(log_p, log_q), kl(log_q, log_p)

"""Dequantization beyond one uniform draw: importance-weighted bits/dim, variational noise.

A density ``q`` on ``[0, 1)^D`` gives the integer image ``x`` (grey levels ``0 .. L-1``)
the probability of its cube, ``P(x) = E_{u ~ r(u|x)}[q((x + u) / L) L^-D / r(u|x)]`` for
any noise distribution ``r`` on ``[0, 1)^D`` that is positive where ``q`` is. Two ways to
use that:

- **importance-weighted bits/dim** (Burda, Grosse and Salakhutdinov 2016, the IWAE bound;
  Ho et al. 2019, Flow++, section 3.1, for dequantization): with ``K`` draws per image,
  ``log (1/K) sum_k q(y_k) L^-D / r(u_k|x)`` is a lower bound on ``log P(x)`` in
  expectation, equal to the usual single-draw bound for ``K = 1``, non-decreasing in
  ``K`` and tending to ``log P(x)``. :func:`noise_log_weights` computes the per-draw terms,
  :func:`importance_weighted_bits` the bound in bits per dimension;
- **variational dequantization** (Flow++, section 3.1): learn ``r(u|x)`` with a small
  conditional flow and train it jointly with the model on the single-draw bound (the
  ELBO), which shrinks its gap ``KL(r(u|x) || q(u|x))``. :class:`VariationalDequantizer`
  is the simplest such flow, a per-pixel logistic noise whose location and scale a small
  convolutional network reads from the image, squashed into ``(0, 1)`` by a sigmoid;
  :func:`train_jointly` trains it with the model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlib import flows as _flows
from flowlib import images as _images
from flowlib import validation
from flowlib.bijectors import initial_kernel
from flowlib.train import Adam

tfd = tfp.distributions


# --------------------------------------------------------------------------- the estimate
def _log_weights_array(log_weights: Any) -> np.ndarray:
    array = validation.array(log_weights, "log_weights").astype(np.float64)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"log_weights must have shape [num_images, num_draws], got {array.shape}")
    return array


def log_mean_exp(values: Any, axis: int = -1) -> np.ndarray:
    """``log(mean(exp(values), axis))``, computed without overflow (the largest term factored out).

    ``values``: a finite numeric array; the result has ``axis`` removed.
    """
    values = validation.array(values, "values").astype(np.float64)
    axis = validation.integer(axis, "axis", minimum=-max(values.ndim, 1), maximum=max(values.ndim, 1) - 1)
    top = values.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis=axis) + np.log(np.mean(np.exp(values - top), axis=axis))


def importance_weighted_bits(log_weights: Any, k: int, num_dims: int, num_levels: int) -> float:
    """The ``k``-draw importance-weighted bound on the bits per dimension of discrete images.

    Args:
        log_weights: ``[num_images, num_draws]``, for each image and noise draw
            ``log q(y) - log r(u | x)`` in nats, with ``y = (x + u) / L`` in ``[0, 1)^D``
            (``log r = 0`` for uniform noise): see :func:`noise_log_weights`.
        k: draws per group; must divide ``num_draws``. The draws of each image are split into
            ``num_draws / k`` groups of ``k``, each group gives
            ``log mean_k exp(log_weights) - D log L``, a lower bound on ``log P(x)`` in
            expectation, and the groups and images are averaged.
        num_dims: ``D``, the numbers per image. num_levels: ``L``.

    Returns the bound in bits per dimension (an upper bound on the model's true figure, in
    expectation). ``k = 1`` is the single-draw figure,
    ``flowlib.images.bits_per_dim(-log_weights.mean(), D, L)``.
    """
    array = _log_weights_array(log_weights)
    k = validation.positive_int(k, "k")
    num_dims = validation.positive_int(num_dims, "num_dims")
    num_levels = validation.integer(num_levels, "num_levels", minimum=2)
    num_images, num_draws = array.shape
    if num_draws % k:
        raise ValueError(f"k must divide the number of draws per image ({num_draws}), got k = {k}")
    groups = array.reshape(num_images, num_draws // k, k)
    return _images.bits_per_dim(-float(log_mean_exp(groups, axis=2).mean()), num_dims, num_levels)


def _check_model(model: Any) -> Any:
    return validation.flow(model, "model")


def _check_dequantizer(dequantizer: Any, num_levels: int, num_dims: int) -> None:
    if dequantizer is None:
        return
    if not isinstance(dequantizer, VariationalDequantizer):
        raise TypeError(
            f"dequantizer must be a VariationalDequantizer or None, got {type(dequantizer).__name__}"
        )
    if dequantizer.num_levels != num_levels:
        raise ValueError(
            f"num_levels ({num_levels}) differs from the dequantizer's ({dequantizer.num_levels})"
        )
    if dequantizer.num_dims != num_dims:
        raise ValueError(f"the model has {num_dims} dimensions, the dequantizer {dequantizer.num_dims}")


def noise_log_weights(
    model: Any,
    images: Any,
    num_levels: int,
    *,
    draws: int,
    seed: int = 0,
    dequantizer: VariationalDequantizer | None = None,
) -> np.ndarray:
    """``log q(y) - log r(u | x)`` for ``draws`` noise draws per image: ``[num_images, draws]``.

    Args:
        model: a density on ``[0, 1)^D`` (a TFP distribution over vectors with ``log_prob``).
        images: integer grey levels ``[num_images, D]`` in ``0 .. num_levels - 1``.
        draws: noise draws per image. seed: seeds the noise.
        dequantizer: the noise ``r(u | x)``; ``None`` for uniform noise (``log r = 0``).

    Feed the result to :func:`importance_weighted_bits`.
    """
    model = _check_model(model)
    levels = _images.check_levels(images, num_levels)
    draws = validation.positive_int(draws, "draws")
    seed = validation.seed(seed)
    if levels.ndim != 2 or levels.shape[1] != model.event_shape[0]:
        raise ValueError(
            f"images must have shape [num_images, {model.event_shape[0]}] for this model, got {levels.shape}"
        )
    _check_dequantizer(dequantizer, num_levels, model.event_shape[0])
    num_images = len(levels)
    if dequantizer is None:
        y = _images.dequantize(levels, num_levels, seed=seed, copies=draws)
        log_r = np.zeros(len(y))
    else:
        stacked = np.concatenate([levels] * draws)
        u, log_r = dequantizer.sample(stacked, seed=seed)
        y = ((stacked + u.numpy()) / num_levels).astype(np.float32)
        y = np.minimum(y, np.nextafter(np.float32(1.0), np.float32(0.0)))  # keep [0, 1) in float32
        log_r = log_r.numpy()
    log_q = _fast_log_prob(model)(tf.constant(y)).numpy()
    return (log_q - log_r).astype(np.float64).reshape(draws, num_images).T


# --------------------------------------------------------------------------- the noise flow
class VariationalDequantizer(tf.Module):
    """A learned dequantization noise ``r(u | x)`` on ``(0, 1)^D``, a small conditional flow.

    Per pixel ``i``: ``e_i ~ Logistic(0, 1)``, ``a_i = mu_i(x) + sigma_i(x) e_i``,
    ``u_i = sigmoid(a_i)``. A convolutional network reads ``mu`` and ``log sigma``
    (``[n, D]`` each) from the whole integer image ``x``, so the noise of one pixel depends
    on its neighbourhood. Its last layer starts at zero (``mu = 0``, ``sigma = 1``), and
    ``sigmoid`` of a standard logistic is uniform: a fresh dequantizer *is* uniform
    dequantization (``log r = 0``), and training moves away from it only if that helps.

    The log-density, by the change of variables through the affine map and the sigmoid,

    .. math:: \\log r(u|x) = \\sum_i \\log \\mathrm{Logistic}(e_i) - \\log \\sigma_i
              - \\log \\mathrm{sigmoid}'(a_i),

    with ``log Logistic(e) = -softplus(e) - softplus(-e)`` and
    ``log sigmoid'(a) = -softplus(a) - softplus(-a)``. ``log sigma`` is bounded to
    ``(-max_log_scale, max_log_scale)`` by a scaled tanh.

    Flow++ uses a deeper conditional flow (couplings with mixtures of logistics); this is
    the simplest member of the family.
    """

    def __init__(
        self,
        height: int,
        width: int,
        channels: int,
        num_levels: int,
        *,
        hidden_channels: int = 16,
        max_log_scale: float = 3.0,
        seed: int = 0,
        name: str = "variational_dequantizer",
    ):
        super().__init__(name=name)
        self.shape = tuple(
            validation.positive_int(v, n)
            for v, n in ((height, "height"), (width, "width"), (channels, "channels"))
        )
        self.num_levels = validation.integer(num_levels, "num_levels", minimum=2)
        self.num_dims = int(np.prod(self.shape))
        hidden_channels = validation.positive_int(hidden_channels, "hidden_channels")
        self.max_log_scale = validation.positive_float(max_log_scale, "max_log_scale")
        seed = validation.seed(seed)
        channels = self.shape[2]
        sizes = [channels, hidden_channels, hidden_channels, 2 * channels]
        self.kernels, self.biases = [], []
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            kernel = initial_kernel([3, 3, fan_in, fan_out], seed, index, zero=index == len(sizes) - 2)
            self.kernels.append(tf.Variable(kernel, name=f"kernel_{index}"))
            self.biases.append(tf.Variable(tf.zeros([fan_out]), name=f"bias_{index}"))

    def _check_images(self, images: Any, name: str = "images") -> np.ndarray:
        levels = _images.check_levels(images, self.num_levels, name)
        if levels.ndim != 2 or levels.shape[1] != self.num_dims:
            raise ValueError(f"{name} must have shape [n, {self.num_dims}], got {levels.shape}")
        return levels

    def location_and_log_scale(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``mu`` and ``log sigma``, ``[n, D]`` each, of integer images ``[n, D]`` (a tensor, unchecked)."""
        height, width, channels = self.shape
        h = tf.reshape(
            tf.cast(images, tf.float32) / (self.num_levels - 1) - 0.5, [-1, height, width, channels]
        )
        for index, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            h = tf.nn.conv2d(h, kernel, strides=1, padding="SAME") + bias
            if index < len(self.kernels) - 1:
                h = tf.nn.relu(h)
        mu = tf.reshape(h[..., :channels], [-1, self.num_dims])
        raw = tf.reshape(h[..., channels:], [-1, self.num_dims])
        return mu, self.max_log_scale * tf.tanh(raw / self.max_log_scale)

    def _sample(self, images: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        mu, log_sigma = self.location_and_log_scale(images)
        tiny = np.finfo(np.float32).tiny
        v = tf.random.stateless_uniform(tf.shape(mu), seed=seed, minval=tiny, maxval=1.0)
        e = tf.math.log(v) - tf.math.log1p(-v)  # standard logistic
        a = mu + tf.exp(log_sigma) * e
        log_r = -tf.nn.softplus(e) - tf.nn.softplus(-e) - log_sigma + tf.nn.softplus(a) + tf.nn.softplus(-a)
        u = tf.sigmoid(a)
        return tf.minimum(u, 1.0 - 2.0**-24), tf.reduce_sum(log_r, axis=-1)

    def sample(self, images: Any, *, seed: int = 0) -> tuple[tf.Tensor, tf.Tensor]:
        """Noise for integer ``images`` ``[n, D]``: ``u`` ``[n, D]`` in ``(0, 1)`` and ``log r(u|x)`` ``[n]``."""
        levels = self._check_images(images)
        seed = validation.seed(seed)
        return self._sample(tf.constant(levels), tf.constant([seed, 0], tf.int32))

    def log_prob(self, images: Any, u: Any) -> tf.Tensor:
        """``log r(u | x)`` ``[n]`` for integer ``images`` ``[n, D]`` and noise ``u`` ``[n, D]`` in ``(0, 1)``."""
        levels = self._check_images(images)
        u = validation.points(u, "u", dim=self.num_dims).astype(np.float64)
        if len(u) != len(levels):
            raise ValueError(f"u must have one row per image ({len(levels)}), got {len(u)}")
        if u.min() <= 0 or u.max() >= 1:
            raise ValueError(
                f"u must lie in the open interval (0, 1), got values from {u.min():g} to {u.max():g}"
            )
        mu, log_sigma = (tf.cast(t, tf.float64) for t in self.location_and_log_scale(tf.constant(levels)))
        a = tf.math.log(u) - tf.math.log1p(-u)
        e = (a - mu) / tf.exp(log_sigma)
        log_r = -tf.nn.softplus(e) - tf.nn.softplus(-e) - log_sigma + tf.nn.softplus(a) + tf.nn.softplus(-a)
        return tf.reduce_sum(log_r, axis=-1)


# --------------------------------------------------------------------------- joint training
@dataclass
class JointHistory:
    """What :func:`train_jointly` did: the loss (minus the ELBO, nats per image) of each step,
    the steps taken and the seconds spent."""

    loss: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # seconds since the start, after each compiled call
    steps: int = 0
    seconds: float = 0.0


def _fast_log_prob(model: Any):
    """``model.log_prob`` running each coupling network once (:func:`flowlib.flows.one_pass_log_prob`).

    A model from ``flowlib.images.with_preprocessing`` is ``Chain([Logit, flow])``: the
    one-pass log-density of the inner flow plus the logit's log-determinant. Other models
    that one-pass cannot handle fall back to ``model.log_prob`` (same numbers, slower).
    """
    if not isinstance(model, tfd.TransformedDistribution):
        return model.log_prob
    one_pass = _flows.one_pass_log_prob(model)
    if one_pass is not None:
        return one_pass
    parts = getattr(model.bijector, "bijectors", None)
    if parts is not None and len(parts) == 2 and isinstance(parts[0], _images.Logit):
        logit, inner = parts
        inner_one_pass = _flows.one_pass_log_prob(tfd.TransformedDistribution(model.distribution, inner))
        if inner_one_pass is not None:
            return lambda y: (
                inner_one_pass(logit.inverse(y)) + logit.inverse_log_det_jacobian(y, event_ndims=1)
            )
    return model.log_prob


def train_jointly(
    model: Any,
    dequantizer: VariationalDequantizer | None,
    images: Any,
    num_levels: int,
    *,
    steps: int,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
    steps_per_call: int = 50,
    progress: bool = True,
) -> JointHistory:
    """Train ``model`` (a density on ``[0, 1)^D``) and ``dequantizer`` together on the ELBO.

    Each step draws ``batch_size`` integer images ``x`` (``[n, D]``, grey levels
    ``0 .. num_levels - 1``; with replacement, seeded), one noise ``u ~ r(u|x)`` each
    (reparameterised, so gradients reach the dequantizer), and takes an Adam step on
    ``-mean(log q((x + u) / L) - log r(u|x))``: minus the single-draw bound on
    ``log P(x) + D log L``. ``dequantizer=None`` draws fresh uniform noise (``log r = 0``)
    and trains the model alone: the same loop, for a comparison at equal steps. The
    learning rate decays to 0 on a cosine over ``steps``, as in ``fit``. A progress bar
    shows the loss. Returns a :class:`JointHistory`.
    """
    steps = validation.positive_int(steps, "steps")
    model = _check_model(model)
    num_levels = validation.integer(num_levels, "num_levels", minimum=2)
    _check_dequantizer(dequantizer, num_levels, model.event_shape[0])
    levels = _images.check_levels(images, num_levels)
    if levels.ndim != 2 or levels.shape[1] != model.event_shape[0] or len(levels) < 1:
        raise ValueError(
            f"images must have shape [n, {model.event_shape[0]}] for this model, got {levels.shape}"
        )
    batch_size = validation.positive_int(batch_size, "batch_size")
    learning_rate = validation.positive_float32(learning_rate, "learning_rate")
    seed = validation.seed(seed)
    steps_per_call = validation.positive_int(steps_per_call, "steps_per_call")
    progress = validation.boolean(progress, "progress")
    from tqdm.auto import tqdm

    start = time.perf_counter()
    log_q = _fast_log_prob(model)
    variables = list(model.trainable_variables)
    if dequantizer is not None:
        variables += list(dequantizer.trainable_variables)
    optimizer = Adam(variables, learning_rate)
    data = tf.constant(levels.astype(np.int32))
    total = float(steps)
    below_one = float(np.nextafter(np.float32(1.0), np.float32(0.0)))

    def one_step(step):
        index = tf.random.stateless_uniform(
            [batch_size], seed=tf.stack([seed, step]), maxval=len(levels), dtype=tf.int32
        )
        x = tf.gather(data, index)
        with tf.GradientTape() as tape:
            if dequantizer is None:
                u = tf.random.stateless_uniform(tf.shape(x), seed=tf.stack([seed + 1, step]))
                log_r = tf.zeros([batch_size])
            else:
                u, log_r = dequantizer._sample(x, tf.stack([seed + 1, step]))
            y = tf.minimum((tf.cast(x, tf.float32) + u) / float(num_levels), below_one)
            loss = -tf.reduce_mean(log_q(y) - log_r)
        rate = learning_rate * 0.5 * (1.0 + tf.cos(math.pi * tf.cast(step, tf.float32) / total))
        optimizer.learning_rate.assign(rate)
        optimizer.apply(tape.gradient(loss, variables))
        return loss

    @tf.function(autograph=False)
    def call(first_step, num_steps):
        _, losses = tf.while_loop(
            lambda i, _: i < num_steps,
            lambda i, losses: (i + 1, losses.write(i, one_step(first_step + i))),
            [tf.constant(0, tf.int32), tf.TensorArray(tf.float32, size=num_steps)],
        )
        return losses.stack()

    history = JointHistory()
    what = "uniform" if dequantizer is None else "variational"
    bar = tqdm(total=steps, desc=f"training, {what} dequantization", unit="step", disable=not progress)
    try:
        while history.steps < steps:
            count = min(steps_per_call, steps - history.steps)
            losses = call(tf.constant(history.steps, tf.int32), tf.constant(count, tf.int32)).numpy()
            if not np.all(np.isfinite(losses)):
                raise FloatingPointError(
                    f"train_jointly: non-finite loss at step {history.steps}; lower learning_rate "
                    f"(now {learning_rate:g})"
                )
            history.loss.extend(float(v) for v in losses)
            history.times.append(time.perf_counter() - start)
            history.steps += count
            bar.update(count)
            bar.set_postfix(loss=f"{losses.mean():.3f}")
    finally:
        bar.close()
        _flows.clear_caches(model)
    history.seconds = time.perf_counter() - start
    return history

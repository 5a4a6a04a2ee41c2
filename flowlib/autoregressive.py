"""Autoregressive flows: MAF (Papamakarios et al., 2017) and IAF (Kingma et al., 2016).

An autoregressive layer changes *every* coordinate, each one with an affine map whose
shift and log-scale depend only on the coordinates before it:

.. math::  x_i = z_i \\exp(s_i) + t_i, \\qquad (t_i, s_i) = f_i(\\cdot_{<i}).

The Jacobian is triangular, so ``log|det J| = sum_i s_i``. One network computes all the
``f_i`` at once: MADE (Germain et al., 2015), a fully connected network whose weights are
multiplied by fixed 0/1 masks so that output ``i`` never sees inputs ``>= i``.

- **MAF** conditions on the *data* side: ``(t, s) = f(x_{<i})``. Density evaluation
  (``inverse``, data to latent) is one MADE pass, ``z = (x - t(x)) exp(-s(x))``;
  sampling (``forward``) must build ``x`` one coordinate at a time: ``dim`` passes.
- **IAF** conditions on the *latent* side: ``(t, s) = f(z_{<i})``. Sampling is one pass;
  density evaluation takes ``dim`` passes. It is MAF with the two directions swapped.

Why not ``tfb.MaskedAutoregressiveFlow`` with ``tfb.AutoregressiveNetwork``? They work
with TF 2.19 + tf-keras (checked: log_prob, gradients and sampling), but the network is
a Keras layer whose weights come from Keras' global random state and whose last layer
cannot start at zero on its own, and the bijector computes the one-pass direction in
``_inverse`` and again in ``_inverse_log_det_jacobian``. The small MADE below is seeded,
starts at zero (a fresh layer is the identity) and serves the layer protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from flowlib import validation
from flowlib.bijectors import (
    MLP,
    FlowBijector,
    affine_forward,
    affine_inverse,
    bounded,
)

AffineStep = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


def check_autoregressive_dim(dim: int) -> int:
    """``dim`` as an int >= 2 (one coordinate has nothing to condition on)."""
    return validation.integer(dim, "dim", minimum=2)


def made_masks(dim: int, hidden_units: Sequence[int], params: int) -> list[np.ndarray]:
    """MADE's 0/1 masks, one per weight matrix, for inputs in their natural order.

    Input ``i`` (0-based) has degree ``i + 1``; hidden unit ``k`` of every layer degree
    ``k mod (dim - 1) + 1``; a unit may read a unit of the layer below whose degree is
    at most its own. Output ``(i, p)`` (the ``p``-th parameter of coordinate ``i``,
    laid out ``[..., dim * params]`` as ``i * params + p``) has degree ``i + 1`` and
    reads only hidden degrees *strictly* below it, so it depends on ``x_{<i}`` only.
    """
    input_degrees = np.arange(1, dim + 1)
    degrees = [input_degrees]
    for units in hidden_units:
        degrees.append(np.arange(units) % max(dim - 1, 1) + 1)
    masks = [
        (d_out[None, :] >= d_in[:, None]).astype(np.float32) for d_in, d_out in zip(degrees[:-1], degrees[1:])
    ]
    output_degrees = np.repeat(input_degrees, params)
    masks.append((output_degrees[None, :] > degrees[-1][:, None]).astype(np.float32))
    return masks


class MADE(MLP):
    """Masked autoencoder for distribution estimation: ``[..., dim] -> [..., dim, params]``.

    Output ``[..., i, :]`` depends on inputs ``[..., :i]`` only (output 0 is a constant).
    An :class:`~flowlib.bijectors.MLP` (ReLU hidden layers, Glorot-uniform weights drawn
    from ``seed``, with ``zero_last=True`` an output layer starting at zero) whose
    kernels are multiplied by the fixed 0/1 masks of :func:`made_masks`.
    """

    def __init__(
        self,
        dim: int,
        params: int,
        hidden_units: Sequence[int] = (64, 64),
        *,
        seed: int = 0,
        zero_last: bool = True,
        name: str | None = None,
    ):
        self.dim = check_autoregressive_dim(dim)
        self.params = validation.positive_int(params, "params")
        hidden_units = validation.positive_ints(hidden_units, "hidden_units")
        super().__init__(
            self.dim, self.dim * self.params, hidden_units, seed=seed, zero_last=zero_last, name=name
        )
        self.masks = [tf.constant(m) for m in made_masks(self.dim, hidden_units, self.params)]

    def _layer_kernels(self) -> list[tf.Tensor]:
        return [kernel * mask for kernel, mask in zip(self.kernels, self.masks)]

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        out = super().__call__(x)
        return tf.reshape(out, tf.concat([tf.shape(x)[:-1], [self.dim, self.params]], axis=0))


class MAF(FlowBijector):
    """Masked autoregressive flow layer: ``x_i = z_i exp(s_i(x_<i)) + t_i(x_<i)`` (forward, latent to data).

    Args:
        dim: number of coordinates (at least 2).
        network: callable ``[..., dim] -> [..., dim, 2]`` (shift, raw log-scale per
            coordinate) that is autoregressive: output ``i`` depends on inputs ``< i``
            only. Default: a :class:`MADE` with ``hidden_units`` starting at zero.
        max_log_scale: bound on the log-scales (``c * tanh(raw / c)``); ``None`` for none.
        hidden_units, seed: for the default network.

    ``inverse`` (density) is one network pass; ``forward`` (sampling) ``dim`` passes.
    ``log|det dx/dz| = sum_i s_i``, shape ``[batch]``.
    """

    def __init__(
        self,
        dim: int,
        network: Callable[[tf.Tensor], tf.Tensor] | None = None,
        *,
        max_log_scale: float | None = 2.0,
        hidden_units: Sequence[int] = (64, 64),
        seed: int = 0,
        name: str = "maf",
    ):
        parameters = dict(locals())
        self.dim = check_autoregressive_dim(dim)
        self.max_log_scale = validation.optional_positive_float(max_log_scale, "max_log_scale")
        if network is None:
            network = MADE(self.dim, 2, hidden_units, seed=seed, name=f"{name}_network")
        elif not callable(network):
            raise TypeError(f"network must be callable, got {type(network).__name__}")
        self.network = network
        super().__init__(forward_min_event_ndims=1, validate_args=False, parameters=parameters, name=name)

    def shift_and_log_scale(self, h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(t, s)`` from the conditioning side ``h`` (``[..., dim]``), each ``[..., dim]``."""
        validation.coordinates(h.shape, self.dim, self.name)
        out = self.network(h)
        shift, raw = out[..., 0], out[..., 1]
        return shift, bounded(raw, self.max_log_scale)

    def _one_pass(self, h: tf.Tensor, step: AffineStep) -> tuple[tf.Tensor, tf.Tensor]:
        """Apply ``step`` with parameters conditioned on the *input* ``h``: one network pass."""
        return step(h, *self.shift_and_log_scale(h))

    def _recursive(self, h: tf.Tensor, step: AffineStep) -> tuple[tf.Tensor, tf.Tensor]:
        """Apply ``step`` with parameters conditioned on the *output*: ``dim`` passes.

        After pass ``i`` the first ``i`` output coordinates are final, because output
        ``i`` only needs the outputs before it; after ``dim`` passes all are, and so are
        the parameters of the last pass (they read outputs ``< dim - 1`` only).
        """
        validation.coordinates(h.shape, self.dim, self.name)
        out, log_det = tf.zeros_like(h), None
        for _ in range(self.dim):
            out, log_det = step(h, *self.shift_and_log_scale(out))
        return out, log_det

    def forward_and_log_det(self, x):
        return self._recursive(x, affine_forward)

    def inverse_and_log_det(self, y):
        return self._one_pass(y, affine_inverse)


class IAF(MAF):
    """Inverse autoregressive flow layer: ``x_i = z_i exp(s_i(z_<i)) + t_i(z_<i)`` (forward).

    MAF with its directions swapped: ``forward`` (sampling) is one network pass,
    ``inverse`` (density) ``dim`` passes. Same arguments as :class:`MAF`.
    """

    def __init__(
        self,
        dim: int,
        network: Callable[[tf.Tensor], tf.Tensor] | None = None,
        *,
        max_log_scale: float | None = 2.0,
        hidden_units: Sequence[int] = (64, 64),
        seed: int = 0,
        name: str = "iaf",
    ):
        super().__init__(
            dim, network, max_log_scale=max_log_scale, hidden_units=hidden_units, seed=seed, name=name
        )

    def forward_and_log_det(self, x):
        return self._one_pass(x, affine_forward)

    def inverse_and_log_det(self, y):
        return self._recursive(y, affine_inverse)

"""Neural spline coupling (Durkan et al., 2019): a monotone rational-quadratic spline per coordinate.

A coupling layer (see :mod:`flowlib.bijectors`) whose changed coordinates go through a
*spline* instead of an affine map. On ``[-B, B]`` the spline is made of ``K`` bins; in
bin ``k`` it is a ratio of two quadratics, fixed by the bin's width, height and the
derivatives at its two knots. All widths, heights and derivatives come from the coupling
network (``3K - 1`` numbers per changed coordinate), so the map can bend each coordinate
almost arbitrarily while staying monotone, and it inverts in closed form (a quadratic
equation per point). Outside ``[-B, B]`` it is the identity (the *tails*), with
derivative 1 at the boundary knots, so the map is continuous with a continuous slope.

The spline's formulas are written out here (:func:`rational_quadratic_spline`), the same
as notebook 08's NumPy version and as TFP's ``tfb.RationalQuadraticSpline`` (TFP 0.25,
``bijectors/rational_quadratic_spline.py``: knots at ``range_min + cumsum(bin_widths)``,
interior ``knot_slopes`` padded with slope 1 at both ends, points outside
``[range_min, range_max]`` unchanged), against which the tests check them in float64.
Why not call TFP's bijector? Inside a training step its general machinery (any batch
shape, ``searchsorted``, caching) compiled in 17 s where this takes 7 s, and it stepped
slower, 124 against 149 steps/s for 8 couplings of 8 bins without XLA (measured by hand on
a quiet 2-core machine when the coupling moved off TFP's bijector, commit 4034547; README,
"Defaults"); with XLA (``fit(jit_compile=True)``) this version runs about 370 steps/s.
This module adds the parametrisation: widths and heights are a softmax scaled to
``2B`` with a minimum size, derivatives a shifted softplus with a minimum, shifted so
that a network output of zero gives equal bins and unit slopes, i.e. the identity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from flowlib import validation
from flowlib.bijectors import Coupling, Network

MIN_BIN_SIZE = (
    validation.MIN_BIN_SIZE
)  # smallest bin width/height, as a fraction of 2B (Durkan et al.'s default)
MIN_DERIVATIVE = 1e-3  # smallest knot slope (Durkan et al.'s default)


def check_bins(num_bins: int) -> int:
    """``num_bins`` as an int from 2 to 999, else an error naming it (:func:`flowlib.validation.num_bins`)."""
    return validation.num_bins(num_bins)


def spline_parameters(raw: tf.Tensor, num_bins: int, bound: float) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Bin widths, bin heights and interior knot slopes from unconstrained numbers.

    ``raw``: ``[..., 3 * num_bins - 1]``. Returns widths and heights ``[..., num_bins]``
    (positive, each set summing to ``2 * bound``) and slopes ``[..., num_bins - 1]``
    (positive). ``raw = 0`` gives equal bins and slopes 1: the identity map.
    """
    raw_widths, raw_heights, raw_slopes = tf.split(raw, [num_bins, num_bins, num_bins - 1], axis=-1)
    span = 2.0 * bound
    free = 1.0 - num_bins * MIN_BIN_SIZE

    def sizes(logits):
        return span * (MIN_BIN_SIZE + free * tf.nn.softmax(logits, axis=-1))

    offset = math.log(math.expm1(1.0 - MIN_DERIVATIVE))  # softplus(offset) = 1 - MIN_DERIVATIVE
    slopes = MIN_DERIVATIVE + tf.nn.softplus(raw_slopes + offset)
    return sizes(raw_widths), sizes(raw_heights), slopes


def knots(
    widths: tf.Tensor, heights: tf.Tensor, slopes: tf.Tensor, bound: float
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The spline's knots and the derivatives there, from bin sizes and interior slopes.

    ``widths``, ``heights``: ``[..., K]``, each summing to ``2 * bound``; ``slopes``:
    ``[..., K - 1]``. Returns ``x_knots``, ``y_knots`` and ``derivatives``, each
    ``[..., K + 1]``: the knots run from ``-bound`` to ``bound`` (the ends set exactly, not
    from a rounded cumulative sum), and the end derivatives are 1 to meet the identity tails.
    """
    lower = tf.fill(tf.shape(widths[..., :1]), tf.cast(-bound, widths.dtype))
    upper = -lower
    # The running sums as a product with a triangle of ones, ``partial[..., j] = sum_{i <= j}
    # sizes[..., i]``, not ``tf.cumsum``: compiled by XLA (the headline's ``jit_compile=True``),
    # ``tf.cumsum`` becomes a reduce-window as wide as the axis (TensorFlow's
    # ``compiler/tf2xla/kernels/scan_ops.cc``), whose cost grows with the square of the bins.
    # Measured (``bench/spline_knots.py``, the headline's shape): with XLA 1.32x the steps/s at
    # 32 bins and 1.07x at 16; without XLA 1.13x at 32 bins and 0.82x at 16.
    num_interior = widths.shape[-1] - 1
    triangle = tf.linalg.band_part(tf.ones([num_interior, num_interior], widths.dtype), 0, -1)

    def positions(sizes):
        partial = tf.matmul(sizes[..., :-1], triangle)
        return tf.concat([lower, lower + partial, upper], axis=-1)

    ones = tf.ones_like(lower)
    return positions(widths), positions(heights), tf.concat([ones, slopes, ones], axis=-1)


def rational_quadratic_spline(
    inputs: tf.Tensor,
    widths: tf.Tensor,
    heights: tf.Tensor,
    slopes: tf.Tensor,
    bound: float,
    *,
    inverse: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """The monotone rational-quadratic spline (or its inverse) and its log-slope, elementwise.

    ``inputs``: ``[...]``; ``widths``, ``heights``: ``[..., K]``; ``slopes``: ``[..., K - 1]``
    (from :func:`spline_parameters`). Returns ``(outputs, log_slope)``, both ``[...]``:
    ``outputs = g(inputs)`` and ``log_slope = log g'(inputs)``, or with ``inverse=True``
    ``outputs = g^{-1}(inputs)`` and ``log_slope = log (g^{-1})'(inputs)``. Outside
    ``[-bound, bound]`` the spline is the identity (log-slope 0).

    In bin ``k`` (knots ``x_k, y_k``, width ``w``, height ``h``, end derivatives
    ``d_k, d_{k+1}``, ``s = h / w``, ``xi = (x - x_k) / w``), Durkan et al. (2019, eqs. 4-8):

        g(x)  = y_k + h (s xi^2 + d_k xi (1 - xi)) / (s + (d_{k+1} + d_k - 2 s) xi (1 - xi))
        g'(x) = s^2 (d_{k+1} xi^2 + 2 s xi (1 - xi) + d_k (1 - xi)^2) / (same denominator)^2

    and the inverse solves ``g(x) = y`` for ``xi``, a quadratic with one root in ``[0, 1]``
    (taken in the form that avoids cancellation). The same formulas as notebook 08's
    NumPy spline and as ``tfb.RationalQuadraticSpline``, against which the tests check
    this (why not call TFP's bijector: see the module's docstring).
    """
    x_knots, y_knots, derivatives = knots(widths, heights, slopes, bound)
    in_knots = y_knots if inverse else x_knots
    num_bins = widths.shape[-1]
    lower = tf.cast(-bound, inputs.dtype)
    inside = (inputs >= lower) & (inputs <= -lower)
    clipped = tf.clip_by_value(inputs, lower, -lower)
    # The bin of each input: how many interior knots lie at or below it (0 .. K - 1), as
    # a one-hot over the bins, so the bin's numbers are picked by a product and a sum.
    bin_index = tf.reduce_sum(tf.cast(clipped[..., None] >= in_knots[..., 1:-1], tf.int32), axis=-1)
    one_hot = tf.one_hot(bin_index, num_bins, dtype=inputs.dtype)

    def pick(values):
        return tf.reduce_sum(one_hot * values, axis=-1)

    x_k, y_k = pick(x_knots[..., :-1]), pick(y_knots[..., :-1])
    width, height = pick(widths), pick(heights)
    d_k, d_k1 = pick(derivatives[..., :-1]), pick(derivatives[..., 1:])
    s = height / width
    curvature = d_k1 + d_k - 2.0 * s

    if inverse:
        dy = clipped - y_k
        a = height * (s - d_k) + dy * curvature
        b = height * d_k - dy * curvature
        c = -s * dy
        discriminant = tf.maximum(b * b - 4.0 * a * c, 0.0)
        xi = tf.clip_by_value(2.0 * c / (-b - tf.sqrt(discriminant)), 0.0, 1.0)
        outputs = x_k + xi * width
    else:
        xi = (clipped - x_k) / width
    xi_1m = xi * (1.0 - xi)
    denominator = s + curvature * xi_1m
    if not inverse:
        outputs = y_k + height * (s * xi * xi + d_k * xi_1m) / denominator
    log_slope = (
        2.0 * tf.math.log(s)
        + tf.math.log(d_k1 * xi * xi + 2.0 * s * xi_1m + d_k * (1.0 - xi) ** 2)
        - 2.0 * tf.math.log(denominator)
    )
    if inverse:
        log_slope = -log_slope
    return tf.where(inside, outputs, inputs), tf.where(inside, log_slope, tf.zeros_like(log_slope))


class SplineCoupling(Coupling):
    """Rational-quadratic spline coupling: ``y1 = x1``, ``y2 = spline(x2; theta(x1))`` per coordinate.

    Args:
        mask: booleans over the coordinates, True = kept (``x1``).
        network: callable ``[..., num_kept] -> [..., (3 * num_bins - 1) * num_changed]``:
            for each changed coordinate (in order), ``num_bins`` width logits,
            ``num_bins`` height logits and ``num_bins - 1`` slope parameters. Default: an
            :class:`~flowlib.bijectors.MLP` starting at zero, so the layer starts as the
            identity.
        num_bins: ``K``, the number of spline bins on ``[-bound, bound]``.
        bound: ``B``; the spline acts on ``[-B, B]`` and is the identity outside.
            Standardised data (zero mean, unit variance) sits well inside ``B = 4``; at
            most ``1e4`` (:data:`flowlib.validation.MAX_SPLINE_BOUND`: float32 could not
            place the knots of a wider spline precisely).
        hidden_units, seed: for the default network.

    ``log|det J| = sum log spline'(x2)`` over the changed coordinates, shape ``[batch]``
    (0 for coordinates in the tails).
    """

    def __init__(
        self,
        mask: Sequence[bool] | np.ndarray,
        network: Network | None = None,
        *,
        num_bins: int = 8,
        bound: float = 4.0,
        hidden_units: Sequence[int] = (64, 64),
        seed: int = 0,
        name: str = "spline_coupling",
    ):
        parameters = dict(locals())
        self.num_bins = check_bins(num_bins)
        self.bound = validation.spline_bound(bound)
        super().__init__(
            mask,
            network,
            outputs_per_changed=3 * self.num_bins - 1,
            hidden_units=hidden_units,
            seed=seed,
            name=name,
            parameters=parameters,
        )

    def _spline_parameters(self, raw: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Widths, heights and slopes from the network's output ``raw`` (``[..., num_changed *
        (3K - 1)]``): ``[..., num_changed, K]`` twice and ``[..., num_changed, K - 1]``."""
        shape = tf.concat([tf.shape(raw)[:-1], [len(self._changed), self.outputs_per_changed]], axis=0)
        return spline_parameters(tf.reshape(raw, shape), self.num_bins, self.bound)

    def _transform(self, x2, raw, *, inverse):
        outputs, log_slope = rational_quadratic_spline(
            x2, *self._spline_parameters(raw), self.bound, inverse=inverse
        )
        return outputs, tf.reduce_sum(log_slope, axis=-1)

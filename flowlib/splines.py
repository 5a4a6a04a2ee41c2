"""Neural spline coupling (Durkan et al., 2019): a monotone rational-quadratic spline per coordinate.

A coupling layer (see :mod:`flowlib.bijectors`) whose changed coordinates go through a
*spline* instead of an affine map. On ``[-B, B]`` the spline is made of ``K`` bins; in
bin ``k`` it is a ratio of two quadratics, fixed by the bin's width, height and the
derivatives at its two knots. All widths, heights and derivatives come from the coupling
network (``3K - 1`` numbers per changed coordinate), so the map can bend each coordinate
almost arbitrarily while staying monotone, and it inverts in closed form (a quadratic
equation per point). Outside ``[-B, B]`` it is the identity (the *tails*), with
derivative 1 at the boundary knots, so the map is continuous with a continuous slope.

The spline itself is TFP's ``tfb.RationalQuadraticSpline`` (TFP 0.25,
``bijectors/rational_quadratic_spline.py``): its knots sit at ``range_min +
cumsum(bin_widths)``, it pads the interior ``knot_slopes`` with slope 1 at both ends,
and every point with ``x <= range_min`` or ``x >= range_max`` passes through unchanged
with log-determinant 0, which are exactly the identity tails of Durkan et al.
This module adds the parametrisation: widths and heights are a softmax scaled to
``2B`` with a minimum size, derivatives a shifted softplus with a minimum, shifted so
that a network output of zero gives equal bins and unit slopes, i.e. the identity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlib import validation
from flowlib.bijectors import Coupling, Network

tfb = tfp.bijectors

MIN_BIN_SIZE = 1e-3  # smallest bin width/height, as a fraction of 2B (Durkan et al.'s default)
MIN_DERIVATIVE = 1e-3  # smallest knot slope (Durkan et al.'s default)


def check_bins(num_bins: int) -> int:
    """``num_bins`` as an int >= 2, else an error naming it.

    One bin is rejected too: its only knots are the boundary ones, whose slopes are fixed
    at 1 to meet the identity tails, and the one rational-quadratic with equal width and
    height and unit end slopes is the identity, whatever the network says.
    """
    num_bins = validation.integer(num_bins, "num_bins")
    if num_bins < 2:
        raise ValueError(
            f"num_bins must be at least 2 (one bin with identity tails is the identity), got {num_bins}"
        )
    if num_bins * MIN_BIN_SIZE >= 1:
        raise ValueError(f"num_bins must be below {int(1 / MIN_BIN_SIZE)}, got {num_bins}")
    return int(num_bins)


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
            Standardised data (zero mean, unit variance) sits well inside ``B = 4``.
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
        self.bound = validation.positive_float(bound, "bound")
        super().__init__(
            mask,
            network,
            outputs_per_changed=3 * self.num_bins - 1,
            hidden_units=hidden_units,
            seed=seed,
            name=name,
            parameters=parameters,
        )

    def spline(self, x1: tf.Tensor) -> tfb.RationalQuadraticSpline:
        """The splines for the kept part ``x1`` (``[..., num_kept]``), batch shape ``[..., num_changed]``."""
        return self._spline(self._network_output(x1))

    def _spline(self, raw: tf.Tensor) -> tfb.RationalQuadraticSpline:
        shape = tf.concat([tf.shape(raw)[:-1], [len(self._changed), self.outputs_per_changed]], axis=0)
        widths, heights, slopes = spline_parameters(tf.reshape(raw, shape), self.num_bins, self.bound)
        return tfb.RationalQuadraticSpline(widths, heights, slopes, range_min=-self.bound)

    def _transform(self, x2, raw, *, inverse):
        spline = self._spline(raw)
        if inverse:
            return spline.inverse(x2), spline.inverse_log_det_jacobian(x2, event_ndims=1)
        return spline.forward(x2), spline.forward_log_det_jacobian(x2, event_ndims=1)

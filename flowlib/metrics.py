"""How good is a flow? Held-out negative log-likelihood and its distance to the limit.

For data drawn from a target density ``p`` and a model density ``q``,

.. math::  \\mathbb{E}_p[-\\log q(x)] = H[p] + \\mathrm{KL}(p \\,\\|\\, q) \\ge H[p].

The left side is what we estimate by the held-out NLL (mean ``-log q`` over fresh
samples, in nats). ``H[p]`` is the entropy of the target, known exactly for a picture
(``log`` of the ink area, :meth:`flowlib.data.PictureDistribution.entropy`). So the
*gap* ``NLL - H`` estimates ``KL(p || q)``: zero is the limit, and every model sits above
it (up to the sampling noise of the estimate, which :func:`evaluate` reports).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow_probability as tfp

from flowlib import flows as _flows
from flowlib import validation
from flowlib.flow import is_hand_built, log_prob_in_chunks

tfd = tfp.distributions


def log_prob(flow: tfd.Distribution, points, *, batch_size: int = 16384) -> np.ndarray:
    """``log q(x)`` for each point in evaluation mode, in batches; ``[num_points]`` float64.

    ``flow``: a :class:`~flowlib.flow.Flow`, a hand-built ``TransformedDistribution``
    (converted with :func:`flowlib.flows.as_flow`: the same one-pass density, or a
    ``TypeError`` naming a layer it cannot take), or any other TFP distribution over
    vectors (a Gaussian baseline), whose own ``log_prob`` is used. Batch norm is switched
    to evaluation mode for the call (and back afterwards), so the result does not depend
    on which other points share the batch.
    """
    array = validation.points(points, "points", dim=_flows.event_dim(validation.flow(flow)), min_points=0)
    batch_size = validation.positive_int(batch_size, "batch_size")
    if is_hand_built(flow):
        flow = _flows.as_flow(flow)
    return log_prob_in_chunks(flow, array, batch_size=batch_size)


def nll(flow: tfd.TransformedDistribution, points) -> float:
    """Mean negative log-likelihood of ``points`` (at least one) under ``flow``, in nats per point."""
    validation.points(points, "points", dim=_flows.event_dim(validation.flow(flow)), min_points=1)
    return float(-np.mean(log_prob(flow, points)))


class Evaluation(NamedTuple):
    """Held-out NLL, the entropy bound, their gap (an estimate of KL), all in nats."""

    nll: float
    entropy: float
    gap: float
    standard_error: float

    def __str__(self) -> str:
        return (
            f"held-out NLL {self.nll:.3f} nats | entropy bound {self.entropy:.3f} nats | "
            f"gap (KL) {self.gap:.3f} ± {self.standard_error:.3f} nats"
        )


def evaluate(flow: tfd.TransformedDistribution, target, points) -> Evaluation:
    """Compare ``flow`` with the exact entropy of ``target`` on held-out ``points``.

    ``target`` is anything with an ``entropy()`` method in nats (e.g. a
    :class:`~flowlib.data.PictureDistribution`); ``points`` are fresh samples of it,
    ``[num_points, dim]`` with at least two points (one point has no standard error), not
    used for training. ``standard_error`` is the standard error of the mean NLL over the points.
    """
    points = validation.points(points, "points", dim=_flows.event_dim(validation.flow(flow)), min_points=2)
    if not callable(getattr(target, "entropy", None)):
        raise TypeError(
            f"target must have an entropy() method (e.g. a PictureDistribution), got {type(target).__name__}"
        )
    entropy = validation.real(target.entropy(), "target.entropy()")
    values = -log_prob(flow, points)
    mean = float(np.mean(values))
    error = float(np.std(values, ddof=1) / np.sqrt(len(values)))
    return Evaluation(nll=mean, entropy=entropy, gap=mean - entropy, standard_error=error)

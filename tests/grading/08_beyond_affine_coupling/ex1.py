"""Hidden tests for notebook 08, exercise 1: rq_spline_inverse on new splines, boxes, shapes and tails."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "08_ex1"
points = 3


def _spline(x, x_knots, y_knots, derivatives):
    """The rational-quadratic spline with straight tails of the end slopes, written afresh."""
    x = np.asarray(x, dtype=np.float64)
    k = np.clip(np.searchsorted(x_knots, x, side="right") - 1, 0, len(x_knots) - 2)
    w, h = x_knots[k + 1] - x_knots[k], y_knots[k + 1] - y_knots[k]
    s, d0, d1 = h / w, derivatives[k], derivatives[k + 1]
    xi = np.clip((x - x_knots[k]) / w, 0.0, 1.0)
    y = y_knots[k] + h * (s * xi**2 + d0 * xi * (1 - xi)) / (s + (d1 + d0 - 2 * s) * xi * (1 - xi))
    y = np.where(x <= x_knots[0], y_knots[0] + derivatives[0] * (x - x_knots[0]), y)
    return np.where(x >= x_knots[-1], y_knots[-1] + derivatives[-1] * (x - x_knots[-1]), y)


def _random_spline(rng, num_bins, x_left, y_left, slope_range=(0.05, 20.0)):
    x_knots = x_left + np.concatenate([[0.0], np.cumsum(rng.uniform(0.05, 3.0, num_bins))])
    y_knots = y_left + np.concatenate([[0.0], np.cumsum(rng.uniform(0.05, 3.0, num_bins))])
    low, high = np.log(slope_range)
    return x_knots, y_knots, np.exp(rng.uniform(low, high, num_bins + 1))


def _refuse(*args, **kwargs):
    raise AssertionError("the inverse is the exercise: write it, do not ask TFP's or flowlib's spline for it")


def _answer(rq_spline_inverse, y, x_knots, y_knots, derivatives):
    """The answer's inverse, computed while TFP's spline bijector and flowlib's spline (which a
    padded or shifted spline of theirs could be made to agree with) refuse to run."""
    from unittest import mock

    import tensorflow_probability as tfp

    from flowlib import splines

    spline = tfp.bijectors.RationalQuadraticSpline
    with (
        mock.patch.object(spline, "_forward", _refuse),
        mock.patch.object(spline, "_inverse", _refuse),
        mock.patch.object(splines, "rational_quadratic_spline", _refuse),
    ):
        return rq_spline_inverse(y, x_knots, y_knots, derivatives)


CASES = [(1, 0.0, 0.0), (2, -7.5, 3.0), (5, 100.0, -50.0), (16, -3.0, -3.0), (40, -20.0, 11.0)]


@test_case(points=2, hidden=True)
def inverts_random_splines_everywhere(rq_spline_inverse):
    for seed, (num_bins, x_left, y_left) in enumerate(CASES):
        rng = np.random.default_rng(808 + seed)
        x_knots, y_knots, derivatives = _random_spline(rng, num_bins, x_left, y_left)
        x_true = np.concatenate(
            [
                rng.uniform(x_knots[0] - 30, x_knots[-1] + 30, 700),
                x_knots,
                rng.uniform(x_knots[0], x_knots[-1], 1300 - len(x_knots)),
            ]
        )
        x_true = rng.permutation(x_true).reshape(5, 25, 16)
        y = _spline(x_true, x_knots, y_knots, derivatives)
        x = np.asarray(
            _answer(rq_spline_inverse, y.copy(), x_knots.copy(), y_knots.copy(), derivatives.copy())
        )
        assert x.shape == y.shape, f"{num_bins} bins: shape {x.shape} for y of shape {y.shape}"
        back = _spline(x.astype(np.float64), x_knots, y_knots, derivatives)
        scale = 1.0 + np.abs(y)
        assert np.all(np.abs(back - y) <= 1e-10 * scale), f"{num_bins} bins: g(your x) != y"
        assert np.allclose(x, x_true, rtol=1e-9, atol=1e-8), f"{num_bins} bins: your x is not g^-1(y)"


@test_case(points=1, hidden=True)
def identity_tails_and_the_edges_of_the_box(rq_spline_inverse):
    rng = np.random.default_rng(19)
    for num_bins, bound in [(3, 1.0), (9, 5.0)]:
        widths, heights = rng.uniform(0.1, 1.0, num_bins), rng.uniform(0.1, 1.0, num_bins)
        x_knots = -bound + np.concatenate([[0.0], np.cumsum(2 * bound * widths / widths.sum())])
        y_knots = -bound + np.concatenate([[0.0], np.cumsum(2 * bound * heights / heights.sum())])
        x_knots[-1] = y_knots[-1] = bound
        derivatives = np.concatenate([[1.0], rng.uniform(0.1, 10.0, num_bins - 1), [1.0]])
        y = np.concatenate([rng.uniform(-1e4, -bound, 50), rng.uniform(bound, 1e4, 50), [-bound, bound]])
        x = np.asarray(_answer(rq_spline_inverse, y.copy(), x_knots, y_knots, derivatives), dtype=np.float64)
        assert np.allclose(x, y, rtol=1e-12, atol=1e-12), (
            f"{num_bins} bins on [-{bound}, {bound}]: the tails are the identity"
        )
        inside = rng.uniform(-bound, bound, 300)
        x = np.asarray(
            _answer(rq_spline_inverse, inside.copy(), x_knots, y_knots, derivatives), dtype=np.float64
        )
        assert np.all(np.abs(_spline(x, x_knots, y_knots, derivatives) - inside) < 1e-10), (
            "g(your x) != y inside"
        )

"""Spline couplings and autoregressive layers beyond the layer contract
(tests/test_layer_contract.py): spline tails and TFP's spline formulas, MADE's
autoregressive structure and argument checks, MAF/IAF pass counts, fresh layers and flows
as the identity, densities of the spline, MAF, IAF and LU flows integrating to one, and the
flow builders' argument errors."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import perturb
from test_layer_contract import random_mlp

from flowlib import flows, metrics
from flowlib.autoregressive import IAF, MADE, MAF
from flowlib.bijectors import half_mask
from flowlib.splines import SplineCoupling

tfb, tfd = tfp.bijectors, tfp.distributions


def random_made(dim, seed):
    return MADE(dim, 2, (32, 32), seed=seed, zero_last=False)


def points(dim, scale, n=512, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-scale, scale, (n, dim)).astype(np.float32))


def test_spline_tails_are_the_identity():
    layer = SplineCoupling(half_mask(2), random_mlp(1, 23, 0), num_bins=8, bound=4.0)
    x = tf.constant([[0.3, 4.5], [-1.0, -7.0], [2.0, 10.0]])
    y, log_det = layer.forward_and_log_det(x)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    np.testing.assert_array_equal(log_det.numpy(), 0.0)
    inside = tf.constant([[0.3, 1.5], [-1.0, -2.0]])
    assert np.abs(layer.forward(inside).numpy() - inside.numpy()).max() > 1e-2


@pytest.mark.parametrize("num_bins,bound", [(8, 4.0), (2, 2.0), (13, 3.0)])
def test_spline_equals_tfps_rational_quadratic_spline(num_bins, bound):
    """flowlib's spline formulas against TFP's independent implementation, in float64."""
    from flowlib.splines import rational_quadratic_spline, spline_parameters

    rng = np.random.default_rng(num_bins)
    raw = tf.constant(rng.normal(size=(400, 3, 3 * num_bins - 1)), tf.float64)
    widths, heights, slopes = spline_parameters(raw, num_bins, bound)
    reference = tfb.RationalQuadraticSpline(widths, heights, slopes, range_min=-bound)
    x = tf.constant(rng.uniform(-1.5 * bound, 1.5 * bound, size=(400, 3)))
    y, log_slope = rational_quadratic_spline(x, widths, heights, slopes, bound)
    np.testing.assert_allclose(y.numpy(), reference.forward(x).numpy(), rtol=0, atol=1e-10)
    expected = reference.forward_log_det_jacobian(x, event_ndims=0).numpy()
    np.testing.assert_allclose(log_slope.numpy(), expected, rtol=0, atol=1e-10)
    y_fresh = tf.constant(y.numpy())  # not TFP's cached forward result
    back, inverse_log_slope = rational_quadratic_spline(y_fresh, widths, heights, slopes, bound, inverse=True)
    np.testing.assert_allclose(back.numpy(), reference.inverse(y_fresh).numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(back.numpy(), x.numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(inverse_log_slope.numpy(), -expected, rtol=0, atol=1e-8)


def test_made_is_autoregressive():
    made = random_made(5, 0)
    x = points(5, 2.0, n=8)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = made(x)[..., 0] + made(x)[..., 1]  # [batch, 5]
    jacobian = np.abs(tape.batch_jacobian(out, x).numpy()).max(axis=0)  # [output i, input j]
    assert np.all(jacobian[np.triu_indices(5)] == 0), "output i reads an input >= i"
    assert np.all(jacobian[np.tril_indices(5, -1)] > 0), "output i ignores an input < i: test is vacuous"


@pytest.mark.parametrize(
    "layer",
    [
        SplineCoupling(half_mask(3), hidden_units=(8,), num_bins=6),
        MAF(3, hidden_units=(8,)),
        IAF(3, hidden_units=(8,)),
    ],
    ids=["spline", "maf", "iaf"],
)
def test_fresh_layer_is_the_identity(layer):
    x = points(3, 10.0)
    y, log_det = layer.forward_and_log_det(x)
    np.testing.assert_allclose(y.numpy(), x.numpy(), atol=2e-6 * 10)
    np.testing.assert_allclose(log_det.numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(layer.inverse(tf.identity(x)).numpy(), x.numpy(), atol=2e-6 * 10)


@pytest.mark.parametrize(
    "build",
    [
        lambda: flows.spline_flow(num_layers=4, hidden_units=(8,)),
        lambda: flows.maf(num_layers=4, hidden_units=(8,)),
        lambda: flows.iaf(num_layers=4, hidden_units=(8,)),
        lambda: flows.realnvp(num_layers=4, hidden_units=(8,), permutation="lu", normalization="none"),
        lambda: flows.spline_flow(num_layers=4, hidden_units=(8,), permutation="lu"),
    ],
    ids=["spline", "maf", "iaf", "realnvp-lu", "spline-lu"],
)
def test_fresh_flow_is_the_base_distribution(build):
    flow = build()
    x = np.random.default_rng(0).standard_normal((200, 2)).astype(np.float32) * 3
    np.testing.assert_allclose(metrics.log_prob(flow, x), flow.distribution.log_prob(x).numpy(), atol=1e-4)


def grid_integral(flow, *, n=500, seed=0):
    samples = flow.sample(20_000, seed=seed).numpy()
    half = 1.25 * np.abs(samples).max()
    xs = np.linspace(-half, half, n)
    grid = np.stack(np.meshgrid(xs, xs), -1).reshape(-1, 2).astype(np.float32)
    return np.exp(metrics.log_prob(flow, grid)).sum() * (xs[1] - xs[0]) ** 2


@pytest.mark.parametrize(
    "build,scale",
    [
        (lambda: flows.spline_flow(num_layers=4, hidden_units=(16,), num_bins=6, bound=3.0), 0.25),
        (lambda: flows.maf(num_layers=4, hidden_units=(16,)), 0.25),
        (lambda: flows.iaf(num_layers=4, hidden_units=(16,)), 0.25),
        (
            lambda: flows.realnvp(num_layers=4, hidden_units=(16,), permutation="lu", normalization="none"),
            0.25,
        ),
    ],
    ids=["spline", "maf", "iaf", "realnvp-lu"],
)
def test_density_integrates_to_one(build, scale):
    flow = build()
    perturb(flow, scale=scale, seed=3)
    x = flow.sample(2000, seed=1).numpy()
    assert abs(np.mean(metrics.log_prob(flow, x)) - np.mean(flow.distribution.log_prob(x).numpy())) > 0.05, (
        "the perturbed flow is still the base: test is vacuous"
    )
    assert grid_integral(flow) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(
    "make,match,error",
    [
        (lambda: flows.spline_flow(dim=1), "dim", ValueError),
        (lambda: flows.spline_flow(num_bins=0), "num_bins", ValueError),
        (lambda: flows.spline_flow(bound=float("inf")), "bound", ValueError),
        (lambda: flows.spline_flow(bound=-1.0), "bound", ValueError),
        (lambda: flows.spline_flow(hidden_units=(64, 0)), "hidden_units", ValueError),
        (lambda: flows.spline_flow(permutation="shuffle"), "permutation", ValueError),
        (lambda: flows.spline_flow(normalization="layernorm"), "normalization", ValueError),
        (lambda: flows.maf(dim=1), "dim", ValueError),
        (lambda: flows.maf(hidden_units=(64, -1)), "hidden_units", ValueError),
        (lambda: flows.iaf(num_layers=0), "num_layers", ValueError),
    ],
)
def test_flow_builders_name_bad_arguments(make, match, error):
    with pytest.raises(error, match=match):
        make()


def test_maf_and_iaf_cost_one_pass_where_promised():
    """MAF: density one network pass, sampling dim passes; IAF the other way round."""
    calls = []
    made = random_made(4, 0)

    def counting(x):
        calls.append(1)
        return made(x)

    x = points(4, 1.0, n=8)
    for kind, one_pass in ((MAF, "inverse"), (IAF, "forward")):
        layer = kind(4, counting)
        for direction in ("forward", "inverse"):
            calls.clear()
            getattr(layer, f"{direction}_and_log_det")(x)
            assert len(calls) == (1 if direction == one_pass else 4), (kind.__name__, direction, len(calls))


def test_a_spline_flow_at_the_largest_bound_is_still_the_base_distribution():
    # validation.MAX_SPLINE_BOUND: at 1e4 float32 still places the knots well enough that a
    # fresh flow's log-density is the base's to 1e-3 nats (at 1e8 it is off by 4.5 nats).
    x = np.random.default_rng(0).standard_normal((500, 2)).astype(np.float32)
    flow = flows.spline_flow(num_layers=2, hidden_units=(4,), bound=1e4)
    np.testing.assert_allclose(flow.log_prob(x).numpy(), flow.distribution.log_prob(x).numpy(), atol=1e-3)
    with pytest.raises(ValueError, match="bound must be at most 10000"):
        flows.spline_flow(bound=1.01e4)


def test_made_checks_its_own_arguments():
    # Issue 21: MADE skipped the seed check that MLP does.
    for kwargs, error in (
        (dict(seed=-1), ValueError),
        (dict(seed=2**31), ValueError),
        (dict(seed=1.5), TypeError),
        (dict(zero_last="no"), TypeError),
    ):
        with pytest.raises(error, match=next(iter(kwargs))):
            MADE(3, 2, (8,), **kwargs)
    with pytest.raises(ValueError, match="params must be a positive integer"):
        MADE(3, 0, (8,))

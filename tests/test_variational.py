"""Reverse-KL training (flowlib.variational): the one-pass sample-and-score, the loss, the
trainer's arguments and guard, and the grid KL, each against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import perturb

from flowlib import flows, variational

MEAN = np.array([1.5, -0.7])
COVARIANCE = np.array([[1.0, 0.6], [0.6, 0.8]])


def gaussian_log_density(x):
    """log N(x; MEAN, COVARIANCE) + 3.0 (an arbitrary offset: the trainer must not care)."""
    precision = tf.constant(np.linalg.inv(COVARIANCE), tf.float32)
    d = x - tf.constant(MEAN, tf.float32)
    return -0.5 * tf.reduce_sum((d @ precision) * d, axis=-1) + 3.0


def gaussian_density_numpy(points, mean, covariance):
    d = points - mean
    quad = np.einsum("ni,ij,nj->n", d, np.linalg.inv(covariance), d)
    return np.exp(-0.5 * quad) / (2 * np.pi * np.sqrt(np.linalg.det(covariance)))


@pytest.fixture(scope="module")
def trained():
    flow = flows.iaf(2, num_layers=3, hidden_units=(32, 32), seed=1)
    history = variational.fit_reverse_kl(
        flow, gaussian_log_density, steps=600, batch_size=256, learning_rate=3e-3, seed=0, progress=False
    )
    return flow, history


@pytest.mark.parametrize("build", [flows.iaf, flows.maf, flows.realnvp, flows.spline_flow])
def test_sample_and_log_prob_agrees_with_the_flows_density(build):
    flow = build(2, num_layers=3, hidden_units=(16, 16), seed=0)
    perturb(flow, scale=0.2)
    x, log_q = variational.sample_and_log_prob(flow, 300, seed=4)
    fresh = tf.constant(x.numpy())  # a new tensor: TFP's bijector cache cannot answer for it
    np.testing.assert_allclose(log_q.numpy(), flow.log_prob(fresh).numpy(), rtol=1e-4, atol=2e-4)
    assert np.std(x.numpy(), axis=0).min() > 0.1, "the samples do not spread"


def test_the_loss_equals_an_independent_monte_carlo_estimate():
    flow = flows.realnvp(2, num_layers=4, hidden_units=(16, 16), seed=2)
    perturb(flow, scale=0.2, seed=3)
    loss = float(variational.reverse_kl_loss(flow, gaussian_log_density, 20_000, seed=7))
    x = flow.sample(20_000, seed=123)  # TFP's own sampler, other draws
    terms = flow.log_prob(tf.constant(x.numpy())).numpy() - gaussian_log_density(x).numpy()
    error = terms.std() / np.sqrt(len(terms))
    assert abs(loss - terms.mean()) < 5 * error * np.sqrt(2), (loss, terms.mean(), error)


def test_the_loss_of_a_gaussian_flow_matches_the_closed_form_kl():
    # A fresh IAF is the identity (its networks start at zero): q = N(0, I).
    flow = flows.iaf(2, num_layers=2, hidden_units=(8,), seed=0)
    loss = float(variational.reverse_kl_loss(flow, gaussian_log_density, 100_000, seed=1))
    log_z = 3.0 + np.log(2 * np.pi * np.sqrt(np.linalg.det(COVARIANCE)))
    precision = np.linalg.inv(COVARIANCE)
    exact = 0.5 * (np.trace(precision) + MEAN @ precision @ MEAN - 2 + np.log(np.linalg.det(COVARIANCE)))
    assert abs(loss + log_z - exact) < 0.03, (loss + log_z, exact)


def test_reverse_kl_recovers_a_gaussian_target(trained):
    flow, history = trained
    assert history.steps == 600 and not history.stopped and history.rescues == 0
    x = flow.sample(40_000, seed=5).numpy()
    np.testing.assert_allclose(x.mean(axis=0), MEAN, atol=0.06)
    np.testing.assert_allclose(np.cov(x.T), COVARIANCE, atol=0.08)
    assert np.mean(history.loss[-50:]) < np.mean(history.loss[:50]) - 0.3


def test_the_trained_density_integrates_to_one_and_grid_kl_is_small(trained):
    flow, _ = trained
    points, shape, area = variational.grid((-6.0, 9.0, -8.0, 6.5), 220)
    log_q = flow.log_prob(points).numpy().astype(np.float64)
    assert abs(np.exp(log_q).sum() * area - 1.0) < 0.01, np.exp(log_q).sum() * area
    p = gaussian_density_numpy(points.astype(np.float64), MEAN, COVARIANCE)
    forward, reverse = variational.grid_kl(np.log(p).reshape(shape), log_q.reshape(shape), area)
    assert 0 <= forward < 0.05 and 0 <= reverse < 0.05, (forward, reverse)


def test_grid_kl_matches_the_closed_form_for_two_gaussians():
    mean_q, cov_q = np.array([-0.5, 0.4]), np.array([[0.7, -0.2], [-0.2, 1.3]])
    points, shape, area = variational.grid((-8.0, 8.0, -7.0, 7.0), 300)
    points = points.astype(np.float64)
    p = gaussian_density_numpy(points, MEAN, COVARIANCE).reshape(shape)
    q = 5.0 * gaussian_density_numpy(points, mean_q, cov_q).reshape(shape)  # unnormalised is fine

    def kl(m0, s0, m1, s1):
        p1 = np.linalg.inv(s1)
        d = m1 - m0
        return 0.5 * (np.trace(p1 @ s0) + d @ p1 @ d - 2 + np.log(np.linalg.det(s1) / np.linalg.det(s0)))

    forward, reverse = variational.grid_kl(np.log(p), np.log(q), area)
    np.testing.assert_allclose(forward, kl(MEAN, COVARIANCE, mean_q, cov_q), rtol=2e-3)
    np.testing.assert_allclose(reverse, kl(mean_q, cov_q, MEAN, COVARIANCE), rtol=2e-3)


def test_a_nan_loss_is_rescued_and_training_goes_on():
    calls = tf.Variable(0)

    def sometimes_nan(x):  # NaN on the 5th evaluation only
        calls.assign_add(1)
        value = gaussian_log_density(x)
        return tf.where(tf.equal(calls, 6), tf.fill(tf.shape(value), np.nan), value)

    flow = flows.iaf(2, num_layers=2, hidden_units=(8,), seed=0)
    history = variational.fit_reverse_kl(flow, sometimes_nan, steps=40, steps_per_call=10, progress=False)
    assert history.rescues == 1 and not history.stopped and history.steps == 40
    assert np.all(np.isfinite(history.loss)) and len(history.loss) == 40
    assert history.learning_rate == pytest.approx(variational.DEFAULT_LEARNING_RATE / 2)
    assert all(np.all(np.isfinite(v.numpy())) for v in flow.trainable_variables)


def test_an_always_nan_density_stops_with_the_weights_untouched():
    flow = flows.iaf(2, num_layers=2, hidden_units=(8,), seed=0)
    perturb(flow, scale=0.1)
    before = [v.numpy().copy() for v in flow.trainable_variables]
    history = variational.fit_reverse_kl(
        flow, lambda x: gaussian_log_density(x) * np.nan, steps=30, max_retries=2, progress=False
    )
    assert history.stopped and history.steps == 0 and history.rescues == 2
    assert history.events[-1].startswith("stopped")
    for old, variable in zip(before, flow.trainable_variables):
        np.testing.assert_array_equal(variable.numpy(), old)


@pytest.mark.parametrize(
    "overrides, error, words",
    [
        ({"flow": "iaf"}, TypeError, "flow must be a flow"),
        ({"log_unnormalized_density": 3.0}, TypeError, "log_unnormalized_density must be a function"),
        ({"steps": 0}, ValueError, "steps must be a positive integer, got 0"),
        ({"batch_size": 2.5}, TypeError, "batch_size must be an integer, got 2.5"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate"),
        ({"seed": -1}, ValueError, "seed"),
        ({"max_retries": -1}, ValueError, "max_retries"),
        ({"log_unnormalized_density": lambda x: x}, ValueError, "must map points [n, 2] to [n]"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(overrides, error, words):
    arguments = {
        "flow": flows.iaf(2, num_layers=1, hidden_units=(4,), seed=0),
        "log_unnormalized_density": gaussian_log_density,
        "steps": 5,
        "progress": False,
    }
    arguments.update(overrides)
    flow, density = arguments.pop("flow"), arguments.pop("log_unnormalized_density")
    with pytest.raises(error, match=None) as raised:
        variational.fit_reverse_kl(flow, density, **arguments)
    assert words in str(raised.value)


def test_bad_grids_are_refused():
    with pytest.raises(ValueError, match="same shape"):
        variational.grid_kl(np.ones((3, 4)), np.ones((4, 3)), 0.1)
    with pytest.raises(ValueError, match="log_q must hold finite values or -inf"):
        variational.grid_kl(np.ones((3, 3)), np.full((3, 3), np.nan), 0.1)
    with pytest.raises(ValueError, match="not only -inf"):
        variational.grid_kl(np.full((3, 3), -np.inf), np.ones((3, 3)), 0.1)
    with pytest.raises(ValueError, match="cell_area"):
        variational.grid_kl(np.zeros((3, 3)), np.zeros((3, 3)), 0.0)
    with pytest.raises(ValueError, match="left < right"):
        variational.grid((1.0, -1.0, 0.0, 1.0), 10)
    with pytest.raises(TypeError, match="four numbers"):
        variational.grid((0.0, 1.0, 0.0), 10)


def test_the_same_integer_seed_gives_the_same_samples():
    flow = flows.iaf(2, num_layers=2, hidden_units=(8,), seed=0)
    first, _ = variational.sample_and_log_prob(flow, 50, seed=3)
    again, _ = variational.sample_and_log_prob(flow, 50, seed=3)
    other, _ = variational.sample_and_log_prob(flow, 50, seed=4)
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert not np.allclose(first.numpy(), other.numpy())

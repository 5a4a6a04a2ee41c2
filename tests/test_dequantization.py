"""flowlib.dequantization: the importance-weighted bits/dim and the variational dequantizer.

The numerical claims are checked against independent computations: the exact discrete
likelihood of a model whose cube probabilities are known in closed form (a product of
Beta distributions, through its CDF), grid integrals of the dequantizer's density, and
scipy's logsumexp.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy.special import logsumexp

from flowlib import dequantization as dq
from flowlib import flows, images

tfd = tfp.distributions

LEVELS = 3
CONCENTRATION_1 = np.array([2.0, 1.5], np.float32)  # per coordinate; uneven inside the cubes
CONCENTRATION_0 = np.array([3.0, 0.8], np.float32)


def beta_model() -> tfd.Distribution:
    """A density on [0, 1)^2 whose cube probabilities are known exactly (Beta CDFs)."""
    return tfd.Independent(tfd.Beta(CONCENTRATION_1, CONCENTRATION_0), reinterpreted_batch_ndims=1)


def exact_bits(grey_levels: np.ndarray) -> float:
    """-mean log2 P(x) / D with P(x) = prod_i (F((x_i + 1) / L) - F(x_i / L)), in float64."""
    beta = tfd.Beta(CONCENTRATION_1.astype(np.float64), CONCENTRATION_0.astype(np.float64))
    low = beta.cdf(grey_levels / LEVELS).numpy()
    high = beta.cdf((grey_levels + 1) / LEVELS).numpy()
    log_p = np.log(high - low).sum(axis=1)
    return float(-log_p.mean() / (grey_levels.shape[1] * math.log(2)))


ALL_IMAGES = np.array([[a, b] for a in range(LEVELS) for b in range(LEVELS)])  # all 9 two-pixel images


def non_uniform_dequantizer(
    height: int, width: int, seed: int, mu: float = 0.8, log_sigma: float = -0.5
) -> dq.VariationalDequantizer:
    """A dequantizer moved away from uniform: random last layer, location and log-scale near the given ones.

    With log_sigma < 0 its density vanishes at the edges of (0, 1) (grid integrals are
    accurate); with log_sigma > 0 it is heavier than uniform there (good importance weights).
    """
    dequantizer = dq.VariationalDequantizer(height, width, 1, LEVELS, hidden_channels=4, seed=seed)
    rng = np.random.default_rng(seed)
    last = dequantizer.kernels[-1]
    last.assign(0.3 * rng.normal(size=last.shape).astype(np.float32))
    dequantizer.biases[-1].assign(np.array([mu, log_sigma], np.float32))  # mu, then log sigma
    return dequantizer


# --------------------------------------------------------------------------- log-mean-exp
def test_log_mean_exp_matches_scipy_and_does_not_overflow():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(5, 7)) * 30 + 900  # exp(900) overflows float64
    np.testing.assert_allclose(dq.log_mean_exp(values, axis=1), logsumexp(values, axis=1) - math.log(7))
    np.testing.assert_allclose(dq.log_mean_exp(values, axis=0), logsumexp(values, axis=0) - math.log(5))
    assert np.all(np.isfinite(dq.log_mean_exp(values)))


# --------------------------------------------------------------------------- the IW estimate
def test_k1_is_the_single_draw_figure():
    rng = np.random.default_rng(1)
    log_weights = rng.normal(-40, 10, size=(11, 6))
    single = images.bits_per_dim(-log_weights.mean(), 64, 17)
    assert math.isclose(dq.importance_weighted_bits(log_weights, 1, 64, 17), single, rel_tol=1e-12)
    # and on a model, from the same noise as images.dequantize draws
    model, draws = beta_model(), 8
    weights = dq.noise_log_weights(model, ALL_IMAGES, LEVELS, draws=draws, seed=5)
    y = images.dequantize(ALL_IMAGES, LEVELS, seed=5, copies=draws)
    direct = images.bits_per_dim(-model.log_prob(y).numpy().mean(), 2, LEVELS)
    assert math.isclose(dq.importance_weighted_bits(weights, 1, 2, LEVELS), direct, rel_tol=1e-6)
    # draw k of image i is row k * num_images + i of the stacked copies
    np.testing.assert_allclose(weights[4, 3], model.log_prob(y[3 * len(ALL_IMAGES) + 4]).numpy(), rtol=1e-6)


def test_k_groups_are_log_mean_exps_of_the_draws():
    rng = np.random.default_rng(2)
    log_weights = rng.normal(0, 3, size=(4, 12))
    by_hand = -np.mean(
        [logsumexp(row[j : j + 3]) - math.log(3) for row in log_weights for j in range(0, 12, 3)]
    )
    assert math.isclose(dq.importance_weighted_bits(log_weights, 3, 5, 4), images.bits_per_dim(by_hand, 5, 4))


@pytest.mark.parametrize("use_dequantizer", [False, True])
def test_iw_estimate_tightens_with_k_towards_the_exact_likelihood(use_dequantizer):
    """Uniform noise and a learned-looking (non-uniform) proposal: both approach log P(x)."""
    model = beta_model()
    dequantizer = non_uniform_dequantizer(1, 2, seed=3, mu=0.3, log_sigma=0.3) if use_dequantizer else None
    weights = dq.noise_log_weights(model, ALL_IMAGES, LEVELS, draws=4096, seed=7, dequantizer=dequantizer)
    exact = exact_bits(ALL_IMAGES)
    bits = [dq.importance_weighted_bits(weights, k, 2, LEVELS) for k in (1, 4, 16, 64, 256)]
    gap_1 = bits[0] - exact
    assert gap_1 > 0.02, f"the single-draw bound should be visibly loose here, gap {gap_1:.4f}"
    assert all(b >= exact - 2e-3 for b in bits), (bits, exact)  # a bound, up to Monte Carlo error
    assert all(later <= earlier + 1e-3 for earlier, later in zip(bits, bits[1:])), bits
    assert bits[-1] - exact < 0.1 * gap_1, (bits, exact)


# --------------------------------------------------------------------------- the dequantizer
def test_fresh_dequantizer_is_uniform_noise():
    dequantizer = dq.VariationalDequantizer(4, 6, 2, 5, seed=0)
    x = np.random.default_rng(0).integers(0, 5, size=(7, 48))
    u, log_r = dequantizer.sample(x, seed=3)
    np.testing.assert_allclose(log_r.numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(dequantizer.log_prob(x, np.full((7, 48), 0.3)).numpy(), 0.0, atol=1e-6)
    assert 0.0 < u.numpy().min() and u.numpy().max() < 1.0


def test_density_integrates_to_one_in_one_dimension_and_sampler_agrees():
    dequantizer = non_uniform_dequantizer(1, 1, seed=4)
    grid = (np.arange(20000) + 0.5) / 20000
    for level in range(LEVELS):
        x = np.full((len(grid), 1), level)
        density = np.exp(dequantizer.log_prob(x, grid[:, None]).numpy())
        assert math.isclose(density.mean(), 1.0, abs_tol=2e-3), (level, density.mean())
        assert density.max() > 1.2  # not uniform: the check below has something to compare
        u, log_r = dequantizer.sample(np.full((20000, 1), level), seed=level)
        u = u.numpy()[:, 0]
        assert abs(u.mean() - (grid * density).mean()) < 0.01, "samples do not follow the density"
        np.testing.assert_allclose(log_r.numpy(), dequantizer.log_prob(x, u[:, None]).numpy(), atol=1e-3)


def test_density_integrates_to_one_in_two_dimensions():
    dequantizer = non_uniform_dequantizer(1, 2, seed=5)
    side = (np.arange(400) + 0.5) / 400
    u = np.stack(np.meshgrid(side, side, indexing="ij"), axis=-1).reshape(-1, 2)
    for image in ([0, 2], [1, 1]):
        x = np.tile(image, (len(u), 1))
        density = np.exp(dequantizer.log_prob(x, u).numpy())
        assert math.isclose(density.mean(), 1.0, abs_tol=3e-3), (image, density.mean())


def test_noise_depends_on_the_image():
    dequantizer = non_uniform_dequantizer(1, 2, seed=6)
    mu, _ = dequantizer.location_and_log_scale(tf.constant([[0, 0], [2, 1]]))
    assert np.abs(mu.numpy()[0] - mu.numpy()[1]).max() > 1e-3


# --------------------------------------------------------------------------- joint training
def test_train_jointly_improves_the_bound_and_moves_the_dequantizer():
    rng = np.random.default_rng(8)
    data = np.stack(
        [rng.choice(LEVELS, 400, p=[0.7, 0.2, 0.1]), rng.choice(LEVELS, 400, p=[0.1, 0.3, 0.6])], 1
    )
    model = images.with_preprocessing(
        flows.realnvp(dim=2, num_layers=2, hidden_units=(8,), normalization="none", seed=0)
    )
    dequantizer = dq.VariationalDequantizer(1, 2, 1, LEVELS, hidden_channels=4, seed=0)
    start = [v.numpy().copy() for v in dequantizer.trainable_variables]

    def bound():
        weights = dq.noise_log_weights(model, data, LEVELS, draws=4, seed=9, dequantizer=dequantizer)
        return dq.importance_weighted_bits(weights, 1, 2, LEVELS)

    before = bound()
    history = dq.train_jointly(
        model,
        dequantizer,
        data,
        LEVELS,
        steps=20,
        batch_size=64,
        learning_rate=1e-2,
        steps_per_call=10,
        progress=False,
    )
    assert history.steps == len(history.loss) == 20 and len(history.times) == 2
    assert bound() < before - 0.05
    moved = max(np.abs(v.numpy() - s).max() for v, s in zip(dequantizer.trainable_variables, start))
    assert moved > 1e-4, "no gradient reached the dequantizer"


# --------------------------------------------------------------------------- bad arguments
def test_bad_arguments_raise_clear_errors():
    weights = np.zeros((3, 8))
    with pytest.raises(ValueError, match="k must divide"):
        dq.importance_weighted_bits(weights, 3, 4, 5)
    with pytest.raises(ValueError, match="k"):
        dq.importance_weighted_bits(weights, 0, 4, 5)
    with pytest.raises(TypeError, match="k"):
        dq.importance_weighted_bits(weights, 1.5, 4, 5)
    with pytest.raises(ValueError, match="log_weights"):
        dq.importance_weighted_bits(np.zeros(8), 1, 4, 5)
    with pytest.raises(ValueError, match="log_weights"):
        dq.importance_weighted_bits(np.full((2, 2), np.nan), 1, 4, 5)
    with pytest.raises(ValueError, match="num_levels"):
        dq.importance_weighted_bits(weights, 1, 4, 1)
    with pytest.raises(ValueError, match="axis"):
        dq.log_mean_exp(weights, axis=2)
    model = beta_model()
    with pytest.raises(ValueError, match="whole grey levels"):
        dq.noise_log_weights(model, ALL_IMAGES + 0.5, LEVELS, draws=2)
    with pytest.raises(ValueError, match="shape"):
        dq.noise_log_weights(model, np.zeros((3, 5), int), LEVELS, draws=2)
    with pytest.raises(ValueError, match="draws"):
        dq.noise_log_weights(model, ALL_IMAGES, LEVELS, draws=0)
    with pytest.raises(TypeError, match="dequantizer"):
        dq.noise_log_weights(model, ALL_IMAGES, LEVELS, draws=2, dequantizer="uniform")
    with pytest.raises(ValueError, match="num_levels"):
        dq.noise_log_weights(
            model, ALL_IMAGES, LEVELS, draws=2, dequantizer=dq.VariationalDequantizer(1, 2, 1, 7)
        )
    with pytest.raises(TypeError, match="model"):
        dq.noise_log_weights("flow", ALL_IMAGES, LEVELS, draws=2)
    with pytest.raises(ValueError, match="num_levels"):
        dq.VariationalDequantizer(2, 2, 1, 1)
    with pytest.raises(ValueError, match="height"):
        dq.VariationalDequantizer(0, 2, 1, 4)
    dequantizer = dq.VariationalDequantizer(1, 2, 1, LEVELS)
    with pytest.raises(ValueError, match="open interval"):
        dequantizer.log_prob(np.zeros((1, 2), int), np.array([[0.0, 0.5]]))
    with pytest.raises(ValueError, match="one row per image"):
        dequantizer.log_prob(np.zeros((2, 2), int), np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="lie in 0 .. 2"):
        dequantizer.sample(np.full((1, 2), 3))
    with pytest.raises(ValueError, match="steps"):
        dq.train_jointly(model, dequantizer, ALL_IMAGES, LEVELS, steps=0)
    with pytest.raises(TypeError, match="dequantizer"):
        dq.train_jointly(model, object(), ALL_IMAGES, LEVELS, steps=5)
    with pytest.raises(ValueError, match="shape"):
        dq.train_jointly(model, None, np.zeros((4, 3), int), LEVELS, steps=5)

"""Hidden tests for notebook 09, exercise 4: the k-draw importance-weighted bound, per image and group, in bits."""

import math

import numpy as np
from otter.test_files import test_case
from scipy.special import logsumexp

OK_FORMAT = False
name = "09_ex4"
points = 3


def _expected(log_q, log_r, num_dims, num_levels, k):
    draws, batch = log_q.shape
    groups = (np.asarray(log_q, float) - np.asarray(log_r, float)).T.reshape(batch, draws // k, k)
    return (logsumexp(groups, axis=2) - math.log(k) - num_dims * math.log(num_levels)) / math.log(2)


def _check(iw_log2_probability, log_q, log_r, num_dims, num_levels, k, rtol=1e-9):
    answer = np.asarray(iw_log2_probability(log_q.copy(), log_r.copy(), num_dims, num_levels, k), dtype=float)
    where = f"shape {log_q.shape}, k = {k}, D = {num_dims}, L = {num_levels}"
    assert answer.shape == (log_q.shape[1], log_q.shape[0] // k), f"wrong shape for {where}"
    assert np.all(np.isfinite(answer)), f"not finite for {where}"
    expected = _expected(log_q, log_r, num_dims, num_levels, k)
    assert np.allclose(answer, expected, rtol=rtol, atol=1e-6), f"wrong bound for {where}"


@test_case(points=1, hidden=True)
def new_shapes_groups_and_levels(iw_log2_probability):
    rng = np.random.default_rng(2024)
    for draws, batch, k, num_dims, levels in [
        (16, 1, 4, 784, 256),
        (9, 4, 3, 1, 3),
        (20, 6, 10, 12, 5),
        (7, 3, 7, 2, 1000),
        (4, 9, 2, 100, 2),
    ]:
        log_q = rng.normal(rng.uniform(-200, 200), 10.0, size=(draws, batch))
        log_r = rng.normal(rng.uniform(-5, 5), 4.0, size=(draws, batch))
        if k > 1:
            log_q[1, batch - 1] = -np.inf  # a draw where the model has no mass
        _check(iw_log2_probability, log_q, log_r, num_dims, levels, k)


@test_case(points=1, hidden=True)
def overflow_and_draws_without_mass(iw_log2_probability):
    rng = np.random.default_rng(7)
    log_q = rng.normal(2000.0, 30.0, size=(12, 5))
    log_r = rng.normal(-600.0, 5.0, size=(12, 5))  # log q - log r beyond float64's exp
    log_q[[0, 5, 7], [1, 3, 4]] = -np.inf
    log_q[3:5, 2] = -np.inf
    for k in (3, 4, 6, 12):
        _check(iw_log2_probability, log_q, log_r, 30, 9, k)


@test_case(points=1, hidden=True)
def group_order_and_single_draw(iw_log2_probability):
    rng = np.random.default_rng(11)
    # very different draws, so grouping draws 0..k-1 against a stride differs clearly
    log_q = np.sort(rng.normal(0.0, 20.0, size=(8, 3)), axis=0)
    log_q[1, 2] = -np.inf
    log_r = np.zeros((8, 3))
    _check(iw_log2_probability, log_q, log_r, 4, 16, 2)
    _check(iw_log2_probability, log_q, log_r, 4, 16, 4)
    # k = 1: the single-draw bound itself, (log q - log r - D log L) / ln 2, images first
    log_q[1, 2] = 0.0
    log_r = rng.normal(size=(8, 3))
    answer = np.asarray(iw_log2_probability(log_q.copy(), log_r.copy(), 4, 16, 1), dtype=float)
    assert np.allclose(answer, ((log_q - log_r).T - 4 * math.log(16)) / math.log(2), rtol=1e-9, atol=1e-9)
    # float32 inputs
    _check(iw_log2_probability, log_q.astype(np.float32), log_r.astype(np.float32), 4, 16, 4, rtol=1e-5)

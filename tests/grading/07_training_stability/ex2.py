"""Hidden tests for notebook 07, exercise 2: forward(inverse(y)) of a training-mode batch norm, in float64."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "07_ex2"
points = 3


def _expected(y, moving_mean, moving_variance, momentum, epsilon):
    mean, variance = y.mean(axis=0), ((y - y.mean(axis=0)) ** 2).mean(axis=0)
    new_mean = momentum * moving_mean + (1 - momentum) * mean
    new_variance = momentum * moving_variance + (1 - momentum) * variance
    return (y - mean) / np.sqrt(variance + epsilon) * np.sqrt(new_variance + epsilon) + new_mean


def _check(predicted_round_trip, seed, n, d, momentum, epsilon, offset=0.0):
    rng = np.random.default_rng(seed)
    y = rng.normal(offset + rng.normal(0.0, 3.0, size=d), rng.uniform(0.05, 6.0, size=d), size=(n, d))
    moving_mean, moving_variance = rng.normal(-1.0, 2.0, size=d), rng.uniform(0.01, 9.0, size=d)
    got = np.asarray(
        predicted_round_trip(y.copy(), moving_mean.copy(), moving_variance.copy(), momentum, epsilon),
        dtype=np.float64,
    )
    assert got.shape == (n, d), f"shape ({n}, {d}) expected, got {got.shape}"
    np.testing.assert_allclose(
        got,
        _expected(y, moving_mean, moving_variance, momentum, epsilon),
        rtol=1e-9,
        atol=1e-9 * (1 + abs(offset)),
        err_msg=f"n={n}, d={d}, momentum={momentum}, epsilon={epsilon}",
    )


@test_case(points=1, hidden=True)
def other_shapes(predicted_round_trip):
    for seed, n, d in [(20, 2, 1), (21, 200, 7), (22, 3, 4), (23, 31, 1)]:
        _check(predicted_round_trip, seed, n, d, 0.99, 1e-3)


@test_case(points=1, hidden=True)
def other_momenta_and_epsilons(predicted_round_trip):
    for seed, momentum, epsilon in [(30, 0.0, 1e-3), (31, 0.999, 1e-6), (32, 0.3, 10.0), (33, 0.75, 0.5)]:
        _check(predicted_round_trip, seed, 40, 3, momentum, epsilon)


@test_case(points=1, hidden=True)
def far_from_the_origin(predicted_round_trip):
    _check(predicted_round_trip, 40, 64, 2, 0.9, 1e-3, offset=-250.0)
    # momentum 0: the moving averages become the batch's, and the round trip is the identity
    rng = np.random.default_rng(41)
    y = rng.normal(size=(10, 3)) * [1.0, 5.0, 0.1]
    got = np.asarray(predicted_round_trip(y.copy(), np.zeros(3), np.ones(3), 0.0, 1e-3), dtype=np.float64)
    np.testing.assert_allclose(got, y, rtol=1e-9, atol=1e-12, err_msg="momentum 0 must give y back")

"""Hidden tests for notebook 03, exercise 3: the fitted Gaussian's gap on new data, mismatched test sets and linear maps."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "03_ex3"
points = 3


def _direct(train, test, entropy):
    train, test = np.asarray(train, np.float64), np.asarray(test, np.float64)
    mean, covariance = train.mean(axis=0), np.cov(train, rowvar=False)
    centred = test - mean
    mahalanobis = np.sum(centred * np.linalg.solve(covariance, centred.T).T, axis=1)
    return np.mean(0.5 * mahalanobis) + 0.5 * np.log(np.linalg.det(2 * np.pi * covariance)) - entropy


@test_case(points=1, hidden=True)
def skewed_data(gaussian_gap):
    rng = np.random.default_rng(12)
    train = np.stack([rng.exponential(2.0, 5000) - 4.0, rng.uniform(-0.3, 0.9, 5000)], axis=1)
    test = np.stack([rng.exponential(2.0, 3000) - 4.0, rng.uniform(-0.3, 0.9, 3000)], axis=1)
    entropy = (1 + np.log(2.0)) + np.log(1.2)  # exponential(scale 2) and uniform of width 1.2
    train, test = train.astype(np.float32), test.astype(np.float32)
    gap = gaussian_gap(train, test, entropy)
    np.testing.assert_allclose(gap, _direct(train, test, entropy), atol=2e-3)
    assert gap > 0


@test_case(points=1, hidden=True)
def test_set_matters(gaussian_gap):
    rng = np.random.default_rng(13)
    train = rng.normal([1.0, -2.0], [0.5, 3.0], size=(20_000, 2)).astype(np.float32)
    for test in (rng.normal([3.0, 0.0], [1.0, 1.0], size=(2000, 2)), rng.uniform(-6, 6, size=(2500, 2))):
        test = test.astype(np.float32)
        np.testing.assert_allclose(
            gaussian_gap(train, test, 0.7), _direct(train, test, 0.7), rtol=1e-3, atol=2e-3
        )


@test_case(points=1, hidden=True)
def correlated_and_moved(gaussian_gap):
    rng = np.random.default_rng(14)
    base = rng.uniform(-1, 1, size=(6000, 2))
    matrix = np.array([[0.2, -1.5], [0.9, 0.4]])  # non-symmetric, negative entries
    train = (base[:4000] @ matrix.T + [-7.0, 3.0]).astype(np.float32)
    test = (base[4000:] @ matrix.T + [-7.0, 3.0]).astype(np.float32)
    entropy = np.log(4.0) + np.log(abs(np.linalg.det(matrix)))
    gap = gaussian_gap(train, test, entropy)
    np.testing.assert_allclose(gap, _direct(train, test, entropy), atol=2e-3)
    np.testing.assert_allclose(
        gaussian_gap(base[:4000].astype(np.float32), base[4000:].astype(np.float32), np.log(4.0)),
        gap,
        atol=2e-3,
    )

"""Hidden tests for notebook 07, exercise 1: first layer at which |x| e^(s_0+...+s_l) leaves float32."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "07_ex1"
points = 3

LIMIT = np.log(np.finfo(np.float32).max)


def _expected(x, log_scales):
    with np.errstate(divide="ignore"):
        level = np.log(np.abs(x))[:, None] + np.cumsum(log_scales, axis=1)
    over = level > LIMIT
    return np.where(over.any(axis=1), over.argmax(axis=1), -1)


def _random_case(rng, n, num_layers, mean, spread):
    while True:  # every running level at least 0.05 away from the limit
        x = rng.choice([-1.0, 1.0], size=n) * np.exp(rng.uniform(-30.0, 60.0, size=n))
        log_scales = rng.normal(mean, spread, size=(n, num_layers))
        level = np.log(np.abs(x))[:, None] + np.cumsum(log_scales, axis=1)
        if np.min(np.abs(level - LIMIT)) > 0.05:
            return x, log_scales


@test_case(points=1, hidden=True)
def many_shapes_and_seeds(first_overflow_layer):
    for seed, n, num_layers, mean, spread in [
        (10, 1, 1, 40.0, 30.0),
        (11, 40, 30, 3.0, 12.0),
        (12, 25, 2, 30.0, 25.0),
        (13, 17, 9, -5.0, 30.0),
        (14, 60, 5, 15.0, 5.0),
    ]:
        rng = np.random.default_rng(seed)
        x, log_scales = _random_case(rng, n, num_layers, mean, spread)
        got = np.asarray(first_overflow_layer(x.copy(), log_scales.copy()))
        assert got.shape == (n,), f"one index per point expected, shape ({n},), got {got.shape}"
        assert np.array_equal(got, _expected(x, log_scales)), f"wrong indices for n={n}, L={num_layers}"


@test_case(points=1, hidden=True)
def edge_values(first_overflow_layer):
    x = np.array([0.0, 3.0e38, -3.0e38, 1e-30, 5.0, -7.0, 1.0, -1.0])
    log_scales = np.array(
        [
            [100.0, 100.0, 100.0],  # zero stays zero
            [0.2, -1.0, 0.0],  # already near the limit: the first layer pushes it over
            [-0.5, 0.3, -0.1],  # shrinks first, then stays below
            [50.0, 50.0, 60.0],  # a tiny value needs all three
            [90.0, -100.0, 95.0],  # over, back, over again: the first counts
            [-1.0, -2.0, -3.0],  # only shrinking
            [44.0, 44.7235, -1.0],  # just above the limit, log(max float32) = 88.72284
            [44.0, 44.7224, 0.0],  # just below it, but above log(3.4e38)
            [30.0, 58.72282, 1e-6],  # 2e-5 below the limit, after the last layer too
            [-10.0, 98.72289, -50.0],  # 5e-5 above it (88.723 or 88.7228 would be wrong)
        ]
    )
    x = np.concatenate([x, [1.0, -1.0]])
    got = np.asarray(first_overflow_layer(x.copy(), log_scales.copy()))
    assert np.array_equal(got, [-1, 0, -1, 2, 0, -1, 1, -1, -1, 1]), f"edge values: got {got}"


@test_case(points=1, hidden=True)
def integer_indices(first_overflow_layer):
    rng = np.random.default_rng(99)
    x, log_scales = _random_case(rng, 8, 6, 20.0, 20.0)
    got = np.asarray(first_overflow_layer(x, log_scales))
    assert np.issubdtype(got.dtype, np.integer), f"an integer array expected, got dtype {got.dtype}"
    assert np.all(got >= -1) and np.all(got < 6), "indices must run from -1 to L - 1"

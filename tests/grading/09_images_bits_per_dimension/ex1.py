"""Hidden tests for notebook 09, exercise 1: mean bits/dim for new shapes, levels, intervals and batches."""

import math

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "09_ex1"
points = 3


def _expected(log_q, shape, levels, low, high):
    num_dims = int(np.prod(shape))
    log_probability = np.asarray(log_q, dtype=float) + num_dims * math.log((high - low) / levels)
    return float(np.mean(-log_probability / math.log(2)) / num_dims)


@test_case(points=1, hidden=True)
def new_shapes_levels_and_intervals(bits_from_log_density):
    rng = np.random.default_rng(2024)
    cases = [
        ((3, 9, 4), 2, (-7.0, -6.5)),
        ((1, 1, 1), 3, (0.25, 4.0)),
        ((32, 32, 3), 256, (-0.5, 0.5)),
        ((11, 2, 5), 1000, (-2.0, 3.0)),
        ((4, 6, 2), 65536, (100.0, 101.0)),
    ]
    for shape, levels, (low, high) in cases:
        num_dims = int(np.prod(shape))
        batch = int(rng.integers(1, 9))
        log_q = rng.normal(-0.3 * num_dims, num_dims, size=batch)
        answer = float(np.asarray(bits_from_log_density(log_q.copy(), shape, levels, (low, high))))
        expected = _expected(log_q, shape, levels, low, high)
        assert math.isclose(answer, expected, rel_tol=1e-6, abs_tol=1e-6), (
            f"wrong for {shape}, {levels}, [{low}, {high})"
        )


@test_case(points=1, hidden=True)
def one_image_and_many(bits_from_log_density):
    rng = np.random.default_rng(7)
    for batch in (1, 1000):
        log_q = rng.uniform(-500, 300, size=batch)
        answer = float(np.asarray(bits_from_log_density(log_q.copy(), (10, 10, 1), 17, (-1.0, 1.0))))
        assert math.isclose(
            answer, _expected(log_q, (10, 10, 1), 17, -1.0, 1.0), rel_tol=1e-6, abs_tol=1e-6
        ), f"batch of {batch}"


@test_case(points=1, hidden=True)
def single_and_double_precision(bits_from_log_density):
    log_q = [12.5, -3.0, 40.25]
    expected = _expected(log_q, (2, 3, 2), 9, -1.5, 0.5)
    for dtype in (np.float64, np.float32):
        answer = float(np.asarray(bits_from_log_density(np.array(log_q, dtype), (2, 3, 2), 9, (-1.5, 0.5))))
        assert math.isclose(answer, expected, rel_tol=1e-6, abs_tol=1e-6), (
            f"wrong for log_q of dtype {np.dtype(dtype).name}"
        )

"""Hidden tests for notebook 08, exercise 3: lu_log_abs_det_and_sign on new sizes, pivots, permutations and large L."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "08_ex3"
points = 3


def _expected(lower_upper, permutation):
    sign, log_abs = np.linalg.slogdet(np.triu(lower_upper))  # U alone: triangular, exact
    return log_abs, sign * np.linalg.det(np.eye(len(permutation))[permutation])


def _packed(rng, dim, lower_scale, low=0.2, high=3.0):
    lower_upper = rng.normal(size=(dim, dim))
    lower_upper[np.tril_indices(dim, -1)] *= lower_scale
    lower_upper[np.diag_indices(dim)] = rng.choice([-1, 1], dim) * np.exp(
        rng.uniform(np.log(low), np.log(high), dim)
    )
    return lower_upper


def _check(lu_log_abs_det_and_sign, lower_upper, permutation, what):
    log_abs, sign = lu_log_abs_det_and_sign(lower_upper.copy(), permutation.copy())
    expected_log, expected_sign = _expected(lower_upper, permutation)
    assert np.isclose(float(log_abs), expected_log, rtol=1e-9, atol=1e-9), f"{what}: wrong log|det W|"
    assert float(sign) == expected_sign, f"{what}: wrong sign of det W"


@test_case(points=2, hidden=True)
def new_sizes_pivots_and_permutations(lu_log_abs_det_and_sign):
    rng = np.random.default_rng(1807)
    for dim in (1, 2, 4, 9, 12, 40):
        lower_upper = _packed(rng, dim, 1.0, 1e-3, 1e3)
        for permutation in (
            rng.permutation(dim),
            rng.permutation(dim),
            np.arange(dim),
            np.roll(np.arange(dim), -1),
        ):
            _check(
                lu_log_abs_det_and_sign,
                lower_upper,
                permutation,
                f"{dim}x{dim}, permutation {permutation.tolist()}",
            )
        if dim > 1:
            swap = np.arange(dim)
            swap[[0, dim - 1]] = swap[[dim - 1, 0]]
            _check(lu_log_abs_det_and_sign, lower_upper, swap, f"{dim}x{dim}, one swap")


@test_case(points=1, hidden=True)
def large_lower_factor(lu_log_abs_det_and_sign):
    rng = np.random.default_rng(2019)
    for dim, lower_scale in [(6, 1e3), (10, 1e5), (16, 1e7)]:
        lower_upper = _packed(rng, dim, lower_scale)
        _check(
            lu_log_abs_det_and_sign,
            lower_upper,
            rng.permutation(dim),
            f"{dim}x{dim} with L's entries ~{lower_scale:g}",
        )

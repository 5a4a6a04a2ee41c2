"""Hidden tests for notebook 02, exercise 1: log_det_h on new dimensions, matrices and points."""

import numpy as np
import tensorflow as tf
from otter.test_files import test_case

OK_FORMAT = False
name = "02_ex1"
points = 2


@test_case(points=2, hidden=True)
def log_det_on_new_matrices(log_det_h):
    for seed, dim in enumerate([1, 4, 8, 6]):
        rng = np.random.default_rng(900 + seed)
        matrix = rng.normal(size=(dim, dim)) + np.diag(rng.uniform(-3, 3, dim))
        if seed == 1:
            matrix[[0, 1]] = matrix[[1, 0]]  # a row swap flips the sign of det A
        if seed == 3:
            matrix *= 0.4  # |det A| < 1: log|det A| is negative
        log_abs_det = float(np.linalg.slogdet(matrix)[1])
        x = rng.normal(-0.5, 2.0, size=(23, dim)).astype(np.float32)
        expected = log_abs_det + np.sum(np.log(np.cosh(x.astype(np.float64))), axis=1)
        got = np.asarray(log_det_h(tf.constant(x), log_abs_det))
        np.testing.assert_allclose(
            got, expected, atol=1e-3, rtol=1e-5, err_msg=f"wrong log|det J| in D = {dim}"
        )

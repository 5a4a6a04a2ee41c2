"""Hidden tests for notebook 01, exercise 3: coupling_jacobian for new shifts, points and sizes."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "01_ex3"
points = 2


@test_case(points=2, hidden=True)
def jacobian_for_new_shifts(coupling_jacobian):
    shifts = [
        lambda t: 3 * np.cos(np.asarray(t)) * np.exp(-0.1 * np.asarray(t)),  # derivatives of new shifts
        lambda t: -2.0 + 0 * np.asarray(t),
        lambda t: 0.01 * np.asarray(t) ** 3,
    ]
    for seed, dh in enumerate(shifts):
        for n in (1, 37):
            x = np.random.default_rng(70 + seed).normal([-1.0, 2.0], [3.0, 0.5], (n, 2)).astype(np.float32)
            J = np.asarray(coupling_jacobian(x, dh), np.float64)
            expected = np.zeros((n, 2, 2))
            expected[:, 0, 0] = expected[:, 1, 1] = 1.0
            expected[:, 1, 0] = dh(x[:, 0])
            assert J.shape == (n, 2, 2), f"shape {J.shape}, expected {(n, 2, 2)}"
            np.testing.assert_allclose(
                J, expected, atol=1e-5, rtol=1e-5, err_msg="wrong Jacobian for a new shift"
            )

"""Hidden tests for notebook 02, exercise 2: affine_density for new asymmetric bases, extreme a and b."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "02_ex2"
points = 2


def _mixture(x):
    x = np.asarray(x, np.float64)
    normal = lambda m, s: np.exp(-0.5 * ((x - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))  # noqa: E731
    return 0.3 * normal(-2.0, 0.5) + 0.7 * normal(1.0, 1.2)


def _gumbel(x):
    z = (np.asarray(x, np.float64) - 1.5) / 2.0
    return np.exp(-(z + np.exp(-z))) / 2.0


@test_case(points=2, hidden=True)
def new_bases_and_extreme_coefficients(affine_density):
    for base, a, b in [
        (_mixture, -0.05, 4.0),
        (_mixture, 7.0, -4.0),
        (_gumbel, -3.0, -10.0),
        (_gumbel, 0.5, 0.0),
    ]:
        x = np.linspace(-12, 20, 4001)
        y = a * x + b
        got = np.asarray(affine_density(y, a, b, base), np.float64)
        np.testing.assert_allclose(
            got, base(x) / abs(a), rtol=1e-6, atol=1e-12, err_msg=f"wrong density for a = {a}, b = {b}"
        )
        grid = np.asarray(y.reshape(4001)[:4000].reshape(50, 80))  # any shape of y
        np.testing.assert_allclose(
            np.asarray(affine_density(grid, a, b, base)),
            got[:4000].reshape(50, 80),
            rtol=1e-6,
            atol=1e-12,
            err_msg="affine_density should work for any shape of y",
        )

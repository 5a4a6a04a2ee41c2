"""Hidden tests for notebook 11, exercise 3: jacobian_trace on new maps, dimensions, scales and points."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "11_ex3"
points = 3

CASES = [(1, 1, 2), (10, 2, 5), (7, 4, 9), (3, 6, 2), (25, 3, 3)]  # (n, d, hidden width)


def _problem(seed, n, d, m):
    rng = np.random.default_rng(1300 + seed)
    W, V, b, c = rng.normal(size=(d, m)), rng.normal(size=(m, d)), rng.normal(size=m), rng.normal(size=d)
    A = rng.normal(size=(d, d))

    def f(x):
        x = np.asarray(x)  # float64, or complex for a complex-step answer
        return np.tanh(x @ W + b) @ V + c * np.sin(x) + x @ A

    x = rng.normal(-1.0, 2.0, (n, d))
    slope = 1 - np.tanh(x @ W + b) ** 2
    expected = slope @ np.diag(V @ W) + np.cos(x) @ c + np.trace(A)
    return f, x, expected


@test_case(points=2, hidden=True)
def traces_of_nonlinear_maps(jacobian_trace):
    for seed, (n, d, m) in enumerate(CASES):
        f, x, expected = _problem(seed, n, d, m)
        got = np.asarray(jacobian_trace(f, x.copy()), dtype=np.float64)
        assert got.shape == (n,), f"n={n}, d={d}: shape {got.shape}"
        assert np.allclose(got, expected, rtol=0, atol=1e-6), f"n={n}, d={d}: wrong trace"


@test_case(points=1, hidden=True)
def only_the_diagonal_counts(jacobian_trace):
    """A map whose off-diagonal derivatives are large and whose trace is exactly zero."""
    S = np.array([[0.0, 40.0, -3.0], [-25.0, 0.0, 7.0], [11.0, 5.0, 0.0]])

    def f(x):
        x = np.asarray(x)
        return x @ S.T + np.stack([x[:, 1] ** 2, x[:, 2] ** 2, x[:, 0] ** 2], axis=1)

    x = np.random.default_rng(9).normal(size=(5, 3))
    got = np.asarray(jacobian_trace(f, x), dtype=np.float64)
    assert np.allclose(got, 0.0, atol=1e-6), "the trace sums only the diagonal of the Jacobian"

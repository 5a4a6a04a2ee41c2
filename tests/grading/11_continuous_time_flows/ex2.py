"""Hidden tests for notebook 11, exercise 2: midpoint_with_log_density on new fields, intervals and step counts."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "11_ex2"
points = 4

# (n, d, t0, t1, num_steps): forwards, backwards, one step, many steps, shifted intervals
CASES = [
    (5, 2, 0.0, 1.0, 3),
    (8, 4, 2.0, 0.5, 11),
    (3, 3, -1.2, -0.7, 1),
    (10, 2, 0.3, 2.3, 40),
    (1, 5, 1.5, 1.1, 2),
]


def _problem(seed, n, d):
    rng = np.random.default_rng(1200 + seed)
    C, B, b = rng.normal(size=(d, d)), rng.normal(size=(d, d)), rng.normal(size=d)

    def velocity(t, x):
        return np.cos(3 * t) * np.tanh(x @ C + b) + (t - 0.2) * (x @ B)

    def divergence(t, x):
        return np.cos(3 * t) * ((1 - np.tanh(x @ C + b) ** 2) @ np.diag(C)) + (t - 0.2) * np.trace(B)

    return velocity, divergence, rng.normal(size=(n, d)), rng.normal(size=n) - 2.0


def _midpoint(velocity, divergence, x, log_p, t0, t1, num_steps):
    h = (t1 - t0) / num_steps
    for k in range(num_steps):
        t = t0 + k * h
        x_mid = x + 0.5 * h * velocity(t, x)
        x, log_p = x + h * velocity(t + 0.5 * h, x_mid), log_p - h * divergence(t + 0.5 * h, x_mid)
    return x, log_p


@test_case(points=1, hidden=True)
def points_at_t1(midpoint_with_log_density):
    for seed, (n, d, t0, t1, steps) in enumerate(CASES):
        velocity, divergence, x, log_p = _problem(seed, n, d)
        got, _ = midpoint_with_log_density(velocity, divergence, x.copy(), log_p.copy(), t0, t1, steps)
        want, _ = _midpoint(velocity, divergence, x, log_p, t0, t1, steps)
        assert np.allclose(np.asarray(got), want, rtol=1e-9, atol=1e-9), (
            f"t0={t0}, t1={t1}, {steps} steps: wrong x"
        )


@test_case(points=2, hidden=True)
def log_density_at_t1(midpoint_with_log_density):
    for seed, (n, d, t0, t1, steps) in enumerate(CASES):
        velocity, divergence, x, log_p = _problem(seed, n, d)
        _, got = midpoint_with_log_density(velocity, divergence, x.copy(), log_p.copy(), t0, t1, steps)
        _, want = _midpoint(velocity, divergence, x, log_p, t0, t1, steps)
        assert np.allclose(np.asarray(got), want, rtol=1e-9, atol=1e-9), (
            f"t0={t0}, t1={t1}, {steps} steps: wrong log-density"
        )


@test_case(points=1, hidden=True)
def converges_to_the_linear_flow(midpoint_with_log_density):
    """For v = A x the log-density at t1 is log p(t0) - (t1 - t0) tr A exactly, whatever the steps."""
    A = np.array([[0.2, -1.0, 0.3], [0.7, -0.4, 0.0], [0.1, 0.5, -0.6]])
    x = np.random.default_rng(7).normal(size=(4, 3))
    _, log_p = midpoint_with_log_density(
        lambda t, y: y @ A.T, lambda t, y: np.full(len(y), np.trace(A)), x, np.zeros(4), 0.5, 1.75, 6
    )
    assert np.allclose(np.asarray(log_p), -1.25 * np.trace(A), atol=1e-10), (
        "log p must fall by the integral of tr A"
    )

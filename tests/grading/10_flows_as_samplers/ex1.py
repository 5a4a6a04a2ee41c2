"""Hidden tests for notebook 10, exercise 1: reverse_kl_estimate on new lengths, offsets, signs and input types."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "10_ex1"
points = 3


def _expected(log_q, log_p_tilde, log_z):
    terms = np.asarray(log_q, dtype=np.float64) - np.asarray(log_p_tilde, dtype=np.float64)
    n = len(terms)
    mean = sum(terms) / n
    spread = np.sqrt(sum((t - mean) ** 2 for t in terms) / (n - 1))
    return mean + log_z, spread / np.sqrt(n)


@test_case(points=2, hidden=True)
def estimate_and_error_on_random_cases(reverse_kl_estimate):
    for seed, (n, log_z, offset) in enumerate(
        [(2, -0.3, 0.0), (3, 11.0, -250.0), (64, -7.25, 300.0), (4001, 0.0, 1.5), (9, 1e-3, -40.0)]
    ):
        rng = np.random.default_rng(9100 + seed)
        log_q = rng.normal(offset, 2.0, n)
        log_p_tilde = log_q - rng.exponential(1.3, n) + rng.normal(0.0, 0.5, n) + log_z
        estimate, error = reverse_kl_estimate(log_q.copy(), log_p_tilde.copy(), log_z)
        want_estimate, want_error = _expected(log_q, log_p_tilde, log_z)
        assert np.isclose(float(estimate), want_estimate, rtol=1e-9, atol=1e-9), f"n = {n}: wrong estimate"
        assert np.isclose(float(error), want_error, rtol=1e-8, atol=0), f"n = {n}: wrong standard error"


@test_case(points=1, hidden=True)
def lists_and_float32_inputs(reverse_kl_estimate):
    rng = np.random.default_rng(77)
    log_q = rng.normal(-2.0, 1.0, 17).astype(np.float32)
    log_p_tilde = (log_q - rng.gamma(1.0, 1.0, 17) + 0.8).astype(np.float32)
    estimate, error = reverse_kl_estimate(log_q.tolist(), tuple(log_p_tilde.tolist()), -2.5)
    want_estimate, want_error = _expected(log_q.astype(np.float64), log_p_tilde.astype(np.float64), -2.5)
    assert np.isclose(float(estimate), want_estimate, rtol=1e-6), "wrong estimate for list inputs"
    assert np.isclose(float(error), want_error, rtol=1e-6), "wrong standard error for list inputs"
    same = np.full(6, 1.25)
    estimate, error = reverse_kl_estimate(same, same - 0.5, 0.25)  # every term is 0.5
    assert np.isclose(float(estimate), 0.75) and np.isclose(float(error), 0.0, atol=1e-12), (
        "equal terms: the estimate is the term plus log Z, the error 0"
    )

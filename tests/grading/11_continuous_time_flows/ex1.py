"""Hidden tests for notebook 11, exercise 1: flow_matching_pieces on new sizes, seeds, times and fields."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "11_ex1"
points = 3

CASES = [(1, 1), (3, 5), (20, 2), (11, 7), (64, 3)]  # (n, d): n != d, one point, d > n


def _velocity(rng, d):
    weights, shift = rng.normal(size=(d, d)), rng.normal(size=d)

    def velocity(times, points):
        times, points = np.asarray(times, dtype=np.float64), np.asarray(points, dtype=np.float64)
        return np.sin(points @ weights + shift) * (0.5 + times[:, None] ** 2) + points[:, ::-1]

    return velocity


def _case(seed, n, d):
    rng = np.random.default_rng(1100 + seed)
    x = rng.normal(3.0, 2.0, (n, d))
    z = rng.normal(-1.0, 0.5, (n, d))
    t = rng.uniform(0, 1, n)
    t[0] = 0.0 if seed % 2 else 1.0  # an end of the path
    return x, z, t, _velocity(rng, d)


@test_case(points=1, hidden=True)
def path_points_and_targets(flow_matching_pieces):
    for seed, (n, d) in enumerate(CASES):
        x, z, t, velocity = _case(seed, n, d)
        x_t, target, _ = flow_matching_pieces(x.copy(), z.copy(), t.copy(), velocity)
        assert np.shape(x_t) == (n, d), f"n={n}, d={d}: x_t has shape {np.shape(x_t)}"
        assert np.allclose(np.asarray(x_t), (1 - t[:, None]) * z + t[:, None] * x, atol=1e-10), (
            f"n={n}, d={d}: x_t is not (1 - t) z + t x"
        )
        assert np.allclose(np.asarray(target), x - z, atol=1e-10), f"n={n}, d={d}: the target is not x - z"


@test_case(points=2, hidden=True)
def loss_terms_are_squared_norms(flow_matching_pieces):
    for seed, (n, d) in enumerate(CASES):
        x, z, t, velocity = _case(seed, n, d)
        _, _, losses = flow_matching_pieces(x.copy(), z.copy(), t.copy(), velocity)
        x_t = (1 - t[:, None]) * z + t[:, None] * x
        expected = np.sum((velocity(t, x_t) - (x - z)) ** 2, axis=1)
        assert np.shape(losses) == (n,), (
            f"n={n}, d={d}: expected {n} loss terms, got shape {np.shape(losses)}"
        )
        assert np.allclose(np.asarray(losses, dtype=np.float64), expected, rtol=1e-9, atol=0), (
            f"n={n}, d={d}: wrong loss terms"
        )

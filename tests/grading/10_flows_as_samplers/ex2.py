"""Hidden tests for notebook 10, exercise 2: grid_kls on new uneven grids, one-row grids, holes and offsets."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "10_ex2"
points = 3


def _expected(log_p, log_q, x_edges, y_edges):
    """Both divergences from the probability of each cell, in a loop."""
    area = np.diff(y_edges)[:, None] * np.diff(x_edges)[None, :]
    top_p, top_q = np.max(log_p[np.isfinite(log_p)]), np.max(log_q[np.isfinite(log_q)])
    mass_p, mass_q = np.exp(log_p - top_p) * area, np.exp(log_q - top_q) * area
    mass_p, mass_q = mass_p / mass_p.sum(), mass_q / mass_q.sum()
    forward = reverse = 0.0
    for i in range(area.shape[0]):
        for j in range(area.shape[1]):
            if mass_p[i, j] > 0:
                forward += np.inf if mass_q[i, j] == 0 else mass_p[i, j] * np.log(mass_p[i, j] / mass_q[i, j])
            if mass_q[i, j] > 0:
                reverse += np.inf if mass_p[i, j] == 0 else mass_q[i, j] * np.log(mass_q[i, j] / mass_p[i, j])
    return forward, reverse


def _edges(rng, n, start, low=0.01, high=0.5):
    return start + np.concatenate([[0.0], np.cumsum(rng.uniform(low, high, n))])


def _agree(got, want, rtol=1e-8):
    return (np.isinf(want) and float(got) == np.inf) or (
        np.isfinite(float(got)) and np.isclose(float(got), want, rtol=rtol, atol=1e-12)
    )


@test_case(points=2, hidden=True)
def random_uneven_grids(grid_kls):
    for seed, (ny, nx, offset_p, offset_q) in enumerate(
        [(1, 7, 0.0, 0.0), (33, 5, 300.0, -300.0), (16, 48, -20.0, 4.0), (3, 2, 0.0, 50.0)]
    ):
        rng = np.random.default_rng(4242 + seed)
        x_edges, y_edges = (
            _edges(rng, nx, rng.uniform(-9, 9)),
            _edges(rng, ny, rng.uniform(-9, 9), 0.001, 2.0),
        )
        log_p = rng.normal(0.0, 2.0, (ny, nx)) + offset_p
        log_q = rng.normal(0.0, 1.0, (ny, nx)) + offset_q
        got = grid_kls(log_p.copy(), log_q.copy(), x_edges.copy(), y_edges.copy())
        forward, reverse = _expected(log_p, log_q, x_edges, y_edges)
        assert _agree(got[0], forward), f"grid {ny}x{nx}: KL(p || q) is wrong"
        assert _agree(got[1], reverse), f"grid {ny}x{nx}: KL(q || p) is wrong"


@test_case(points=1, hidden=True)
def zero_densities(grid_kls):
    rng = np.random.default_rng(31)
    x_edges, y_edges = _edges(rng, 12, -1.0), _edges(rng, 10, 2.0)
    log_p, log_q = rng.normal(0, 1, (10, 12)), rng.normal(0, 1, (10, 12))
    holes = rng.random((10, 12)) < 0.4
    log_p[holes], log_q[holes] = -np.inf, -np.inf  # both 0 on the same cells: both finite
    got = grid_kls(log_p.copy(), log_q.copy(), x_edges, y_edges)
    forward, reverse = _expected(log_p, log_q, x_edges, y_edges)
    assert np.isfinite(forward) and _agree(got[0], forward), "shared zeros: KL(p || q) is wrong"
    assert np.isfinite(reverse) and _agree(got[1], reverse), "shared zeros: KL(q || p) is wrong"
    log_q[0, 0], log_p[0, 0] = -np.inf, 0.5  # q misses a cell of p: KL(p || q) is infinite
    got = grid_kls(log_p.copy(), log_q.copy(), x_edges, y_edges)
    forward, reverse = _expected(log_p, log_q, x_edges, y_edges)
    assert float(got[0]) == np.inf, "q is 0 where p is not: KL(p || q) must be inf"
    assert _agree(got[1], reverse), "KL(q || p) is finite when q is 0 where p is not"

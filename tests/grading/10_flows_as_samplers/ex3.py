"""Hidden tests for notebook 10, exercise 3: covered_fraction on new grids, scales, labels and edge cases."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "10_ex3"
points = 3


def _expected(p, q, labels, num_modes):
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    out = []
    for k in range(num_modes):
        covered = total = 0.0
        for a, b, label in zip(p.ravel(), q.ravel(), np.asarray(labels).ravel()):
            if label == k:
                covered += min(a, b)
                total += a
        out.append(covered / total)
    return np.array(out)


@test_case(points=2, hidden=True)
def random_grids(covered_fraction):
    for seed, (shape, num_modes, scale_p, scale_q) in enumerate(
        [((7, 29), 4, 1e-3, 50.0), ((50, 21), 6, 9.0, 0.2), ((3, 5), 1, 1.0, 1.0), ((20, 20), 3, 0.5, 2.0)]
    ):
        rng = np.random.default_rng(5050 + seed)
        p = rng.gamma(1.2, 1.0, shape) * scale_p
        q = rng.gamma(0.6, 1.0, shape) * scale_q
        q[:, : shape[1] // 2] *= 3.0  # the model overweights the left columns
        labels = rng.integers(-1, num_modes, shape)
        labels.ravel()[:num_modes] = np.arange(num_modes)  # every mode has cells
        got = np.asarray(covered_fraction(p.copy(), q.copy(), labels.copy(), num_modes), dtype=float)
        assert got.shape == (num_modes,), f"expected {num_modes} fractions, got shape {got.shape}"
        assert np.allclose(got, _expected(p, q, labels, num_modes), rtol=1e-9), (
            f"grid {shape}: wrong fractions"
        )


@test_case(points=1, hidden=True)
def exact_cover_missed_mode_and_lists(covered_fraction):
    rng = np.random.default_rng(8)
    p = rng.uniform(0.1, 1.0, (6, 9))
    labels = np.where(np.arange(9)[None, :] < 4, 0, 1) * np.ones((6, 1), dtype=int)
    labels[0] = -1
    got = np.asarray(covered_fraction(p, 7.0 * p, labels, 2), dtype=float)
    assert np.allclose(got, [1.0, 1.0]), "q proportional to p covers every mode fully"
    q = p.copy()
    q[labels == 1] = 0.0  # q misses mode 1 and puts its mass on mode 0 and the rest
    got = np.asarray(covered_fraction(p.tolist(), q.tolist(), labels.tolist(), 2), dtype=float)
    assert np.allclose(got, _expected(p, q, labels, 2), rtol=1e-9) and got[1] == 0.0, (
        "a missed mode is covered 0; the other is covered in proportion"
    )

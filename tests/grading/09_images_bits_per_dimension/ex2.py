"""Hidden tests for notebook 09, exercise 2: log|det dz/dv| per image on new shapes, levels, alphas, extremes."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "09_ex2"
points = 3


def _expected(v, levels, alpha):
    """log|det dz/dv| per image from the full Jacobian [batch, D, D], by central differences in float64."""
    flat, step = np.reshape(np.asarray(v, dtype=np.float64), (len(v), -1)), 1e-6
    eye = np.eye(flat.shape[1])

    def preprocess(values):
        s = alpha + (1 - 2 * alpha) * values / levels
        return np.log(s) - np.log(1 - s)

    jacobian = (preprocess(flat[:, None, :] + step * eye) - preprocess(flat[:, None, :] - step * eye)) / (
        2 * step
    )
    return np.linalg.slogdet(np.swapaxes(jacobian, 1, 2))[1]


@test_case(points=1, hidden=True)
def new_shapes_levels_and_alphas(preprocessing_log_det):
    rng = np.random.default_rng(2025)
    for shape, levels, alpha in [
        ((1, 3, 7, 2), 2, 0.45),
        ((5, 6, 2, 1), 1024, 0.001),
        ((2, 2, 2, 4), 33, 0.3),
    ]:
        v = rng.integers(0, levels, size=shape) + rng.uniform(0, 1, size=shape)
        answer = np.asarray(preprocessing_log_det(v.copy(), levels, alpha), dtype=float)
        assert answer.shape == (shape[0],), f"shape [batch] expected for {shape}"
        np.testing.assert_allclose(answer, _expected(v, levels, alpha), rtol=1e-5, atol=1e-3)


@test_case(points=1, hidden=True)
def empty_and_full_images(preprocessing_log_det):
    levels, alpha = 17, 0.05
    v = np.stack([np.zeros((4, 5, 1)), np.full((4, 5, 1), levels - 1e-9), np.full((4, 5, 1), levels / 2)])
    answer = np.asarray(preprocessing_log_det(v.copy(), levels, alpha), dtype=float)
    np.testing.assert_allclose(answer, _expected(v, levels, alpha), rtol=1e-5, atol=1e-3)


@test_case(points=1, hidden=True)
def images_differ_from_each_other(preprocessing_log_det):
    rng = np.random.default_rng(3)
    v = rng.uniform(0, 256, size=(6, 4, 4, 3)).astype(np.float32)
    answer = np.asarray(preprocessing_log_det(v.copy(), 256, 0.1), dtype=float)
    np.testing.assert_allclose(answer, _expected(v.astype(np.float64), 256, 0.1), rtol=1e-5, atol=1e-3)

"""Hidden tests for notebook 09, exercise 3: channels-first squeeze on new shapes, dtypes and strided inputs."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "09_ex3"
points = 3


def _expected(x):
    n, channels, height, width = x.shape
    out = np.empty((n, 4 * channels, height // 2, width // 2), dtype=x.dtype)
    for c in range(channels):
        for row in range(height):
            for col in range(width):
                out[:, 4 * c + 2 * (row % 2) + col % 2, row // 2, col // 2] = x[:, c, row, col]
    return out


@test_case(points=1, hidden=True)
def new_shapes(squeeze_channels_first):
    rng = np.random.default_rng(2026)
    for shape in [(1, 5, 2, 12), (4, 4, 10, 6), (2, 7, 14, 4), (1, 1, 2, 2)]:
        x = rng.normal(size=shape)
        answer = np.asarray(squeeze_channels_first(x.copy()))
        np.testing.assert_array_equal(answer, _expected(x), err_msg=f"wrong for images of shape {shape}")


@test_case(points=1, hidden=True)
def integers_and_strided_views(squeeze_channels_first):
    rng = np.random.default_rng(5)
    x = rng.integers(-1000, 1000, size=(3, 6, 8, 2))
    view = np.transpose(x, (0, 3, 2, 1))  # [3, 2, 8, 6], not contiguous
    for given in (x, view):
        answer = np.asarray(squeeze_channels_first(given))
        np.testing.assert_array_equal(answer, _expected(np.ascontiguousarray(given)))


@test_case(points=1, hidden=True)
def a_bijection(squeeze_channels_first):
    x = np.arange(2 * 3 * 4 * 6).reshape(2, 3, 4, 6)
    answer = np.asarray(squeeze_channels_first(x.copy()))
    assert sorted(answer.ravel().tolist()) == list(range(x.size)), "every value once, none changed"
    np.testing.assert_array_equal(answer, _expected(x))

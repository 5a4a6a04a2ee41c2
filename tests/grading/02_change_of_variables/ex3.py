"""Hidden tests for notebook 02, exercise 3: grid_integral (midpoint rule) on new extents and resolutions."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "02_ex3"
points = 2


def _midpoint(fn, extent, resolution):
    left, right, bottom, top = extent
    width, height = (right - left) / resolution, (top - bottom) / resolution
    total = 0.0
    for i in range(resolution):
        for j in range(resolution):
            centre = np.array([[left + (i + 0.5) * width, bottom + (j + 0.5) * height]], np.float32)
            total += float(np.asarray(fn(centre))[0]) * width * height
    return total


def _bump(p):
    p = np.asarray(p, np.float64)
    return np.exp(-((p[:, 0] - 11.0) ** 2) / 2.0 - (p[:, 1] + 18.0) ** 2 / 0.5) * (1 + 0.2 * p[:, 0])


@test_case(points=2, hidden=True)
def midpoint_rule_on_far_rectangles(grid_integral):
    for extent, resolution in [
        ((10.0, 13.0, -20.0, -17.0), 1),
        ((9.0, 12.5, -19.0, -17.5), 2),
        ((8.0, 14.0, -18.5, -17.0), 9),
    ]:
        expected = _midpoint(_bump, extent, resolution)
        got = grid_integral(_bump, extent, resolution)
        np.testing.assert_allclose(
            got, expected, rtol=1e-4, err_msg=f"not the midpoint rule over {extent}, resolution {resolution}"
        )

"""Hidden tests for notebook 03, exercise 2: the drawing's hole, and on_ink on new pictures, rectangles and edge cases."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "03_ex2"
points = 3


def _points_in_pixels(rng, r, c, extent, shape, margin=0.02):
    left, right, bottom, top = extent
    u = rng.uniform(margin, 1 - margin, size=(len(r), 2))
    return np.stack(
        [left + (c + u[:, 0]) * (right - left) / shape[1], top - (r + u[:, 1]) * (top - bottom) / shape[0]],
        axis=-1,
    )


def _check_picture(on_ink, rng, ink, extent, n=3000):
    r, c = rng.integers(0, ink.shape[0], n), rng.integers(0, ink.shape[1], n)
    got = np.asarray(on_ink(ink.copy(), extent, _points_in_pixels(rng, r, c, extent, ink.shape))).astype(bool)
    assert got.shape == (n,), f"one boolean per point, got {got.shape}"
    wrong = int(np.sum(got != ink[r, c]))
    assert wrong == 0, f"{wrong} of {n} points wrong on a {ink.shape} picture on {extent}"


@test_case(points=1, hidden=True)
def drawing_is_the_one_described(holed_frame):
    expected = np.ones((120, 180), dtype=bool)
    expected[20:70, 30:130] = False
    assert np.array_equal(np.asarray(holed_frame.ink), expected), (
        "the drawing is not the one the text describes"
    )
    np.testing.assert_allclose(holed_frame.pixel_size, 6.0 / 180)


@test_case(points=1, hidden=True)
def new_pictures_and_rectangles(on_ink):
    rng = np.random.default_rng(2027)
    for shape, extent in [
        ((3, 17), (-100.0, -90.0, 40.0, 41.5)),
        ((25, 2), (0.001, 0.011, -0.3, 0.2)),
        ((1, 1), (-1.0, 1.0, -1.0, 1.0)),
        ((12, 12), (-7.0, -1.0, 3.0, 9.0)),
        ((30, 41), (-3.0, 3.0, -2.2, 2.2)),
    ]:
        ink = rng.random(shape) < 0.5
        ink.flat[0] = True
        _check_picture(on_ink, rng, ink, extent)
    letter_f = np.zeros((7, 5), dtype=bool)  # an "F": not symmetric under any flip or transpose
    letter_f[:, 0] = True
    letter_f[0, :] = True
    letter_f[3, :3] = True
    _check_picture(on_ink, rng, letter_f, (2.0, 4.5, -1.0, 2.5))


@test_case(points=1, hidden=True)
def outside_and_empty(on_ink):
    rng = np.random.default_rng(4)
    ink = np.ones((6, 9), dtype=bool)  # all ink: everything inside is ink, everything outside paper
    extent = (-2.0, 7.0, 1.0, 4.0)
    outside = np.array([[-2.01, 2.0], [7.01, 2.0], [0.0, 0.99], [0.0, 4.01], [-50.0, -50.0], [60.0, 30.0]])
    inside = rng.uniform([-1.99, 1.01], [6.99, 3.99], size=(500, 2))
    assert not np.asarray(on_ink(ink, extent, outside)).any(), "points outside the rectangle must be paper"
    assert np.asarray(on_ink(ink, extent, inside)).all(), "points inside an all-ink picture are ink"
    empty = np.zeros((5, 3), dtype=bool)
    assert not np.asarray(on_ink(empty, extent, inside)).any(), "a picture without ink has no ink"

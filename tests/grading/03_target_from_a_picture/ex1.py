"""Hidden tests for notebook 03, exercise 1: hit-or-miss entropy on new regions, far-off and thin rectangles, seeds."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "03_ex1"
points = 4


def _run(entropy_by_hit_or_miss, is_in, extent, num_points, seed):
    thrown = []

    def is_ink(points):
        points = np.asarray(points, dtype=np.float64)
        assert points.ndim == 2 and points.shape[1] == 2, (
            f"is_ink takes points of shape [n, 2], got {points.shape}"
        )
        thrown.append(points)
        return is_in(points)

    estimate = entropy_by_hit_or_miss(is_ink, extent, num_points, seed=seed)
    assert thrown, "is_ink was never called"
    return float(estimate), np.concatenate(thrown)


def _uniform_on(points, extent, name):
    left, right, bottom, top = extent
    inside = (
        (points[:, 0] >= left) & (points[:, 0] <= right) & (points[:, 1] >= bottom) & (points[:, 1] <= top)
    )
    assert inside.all(), f"{name}: points outside the rectangle"
    for axis, low, high in [(0, left, right), (1, bottom, top)]:
        counts = np.histogram(points[:, axis], bins=10, range=(low, high))[0] / len(points)
        assert np.max(np.abs(counts - 0.1)) < 0.006, f"{name}: points not uniform along axis {axis}"


@test_case(points=1, hidden=True)
def far_away_disc(entropy_by_hit_or_miss):
    centre, radius = np.array([-40.0, 25.0]), 1.3
    extent = (-42.0, -36.5, 22.0, 28.5)  # disc covers about 15% of it

    def in_disc(p):
        return np.sum((p - centre) ** 2, axis=1) <= radius**2

    for seed in (3, 11):
        estimate, thrown = _run(entropy_by_hit_or_miss, in_disc, extent, 500_000, seed)
        assert len(thrown) == 500_000, "not num_points points"
        _uniform_on(thrown, extent, "disc")
        assert abs(estimate - np.log(np.pi * radius**2)) < 0.025, f"disc: estimate {estimate:.4f} is off"


@test_case(points=1, hidden=True)
def thin_strip_region(entropy_by_hit_or_miss):
    extent = (-30.0, 20.0, -0.05, 0.15)  # 50 wide, 0.2 tall

    def below_sine(p):  # the part of the strip under a wave: area = 50 * 0.1 exactly
        return p[:, 1] - (-0.05) < 0.1 + 0.05 * np.sin(2 * np.pi * (p[:, 0] + 30.0) / 10.0)

    estimate, thrown = _run(entropy_by_hit_or_miss, below_sine, extent, 300_000, 5)
    assert len(thrown) == 300_000, "not num_points points"
    _uniform_on(thrown, extent, "strip")
    assert abs(estimate - np.log(5.0)) < 0.02, f"strip: estimate {estimate:.4f} is off"


@test_case(points=1, hidden=True)
def seeds_and_sizes(entropy_by_hit_or_miss):
    extent = (0.5, 3.5, -2.0, -0.5)

    def in_square(p):  # a 1 x 0.5 box inside the rectangle: area 0.5
        return (p[:, 0] > 1.0) & (p[:, 0] < 2.0) & (p[:, 1] > -1.2) & (p[:, 1] < -0.7)

    a, thrown_a = _run(entropy_by_hit_or_miss, in_square, extent, 777, 8)
    assert len(thrown_a) == 777, "not num_points points"
    b, thrown_b = _run(entropy_by_hit_or_miss, in_square, extent, 777, 8)
    c, thrown_c = _run(entropy_by_hit_or_miss, in_square, extent, 777, 9)
    assert a == b and np.array_equal(thrown_a, thrown_b), (
        "the same seed must give the same points and estimate"
    )
    assert not np.array_equal(thrown_a, thrown_c), "different seeds should give different points"
    estimate, _ = _run(entropy_by_hit_or_miss, in_square, extent, 400_000, 1)
    assert abs(estimate - np.log(0.5)) < 0.02, f"box: estimate {estimate:.4f} is off"


@test_case(points=1, hidden=True)
def other_regions_in_the_words_rectangle(entropy_by_hit_or_miss, my_word):
    left, right, bottom, top = extent = tuple(float(v) for v in my_word.extent)
    centre = np.array([0.3 * left + 0.7 * right, 0.6 * bottom + 0.4 * top])
    a, b = 0.2 * (right - left), 0.3 * (top - bottom)

    def in_ellipse(p):  # an off-centre ellipse inside the word's own rectangle
        return ((p[:, 0] - centre[0]) / a) ** 2 + ((p[:, 1] - centre[1]) / b) ** 2 <= 1

    estimate, thrown = _run(entropy_by_hit_or_miss, in_ellipse, extent, 300_000, 6)
    assert len(thrown) == 300_000, "not num_points points"
    _uniform_on(thrown, extent, "ellipse in the word's rectangle")
    assert abs(estimate - np.log(np.pi * a * b)) < 0.02, f"ellipse: estimate {estimate:.4f} is off"
    ink_area = np.count_nonzero(my_word.ink) * my_word.pixel_size**2
    paper = (right - left) * (top - bottom) - ink_area
    estimate, _ = _run(
        entropy_by_hit_or_miss, lambda p: ~np.isfinite(my_word.log_prob(p)), extent, 200_000, 7
    )
    assert abs(estimate - np.log(paper)) < 0.02, f"paper around the word: estimate {estimate:.4f} is off"

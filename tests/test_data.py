"""The picture distribution: exact density, entropy, samples on the ink, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from flowlib.data import PictureDistribution, check_text, looks_inverted, render_text


def square_picture(size: int = 20, margin: int = 5) -> np.ndarray:
    grey = np.ones((size + 2 * margin, size + 2 * margin))
    grey[margin : margin + size, margin : margin + size] = 0.0
    return grey


def test_samples_lie_on_the_ink(word):
    points = word.sample(20_000, seed=3)
    assert points.shape == (20_000, 2) and points.dtype == np.float32
    assert np.all(np.isfinite(word.log_prob(points)))


def test_samples_are_seeded_and_cover_every_ink_pixel(word):
    a, b, c = word.sample(5000, seed=1), word.sample(5000, seed=1), word.sample(5000, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    points = word.sample(400_000, seed=0)
    left, _, _, top = word.extent
    cols = np.floor((points[:, 0] - left) / word.pixel_size).astype(int)
    rows = np.floor((top - points[:, 1]) / word.pixel_size).astype(int)
    hit = np.zeros_like(word.ink)
    hit[rows, cols] = True
    np.testing.assert_array_equal(hit, word.ink)


def test_entropy_of_a_square_is_log_of_its_area():
    target = PictureDistribution.from_image(square_picture(), width=2.0)
    assert target.ink.shape == (20, 20)  # cropped to the ink
    assert target.ink_area == pytest.approx(4.0)
    assert target.entropy() == pytest.approx(np.log(4.0))


def test_log_prob_integrates_to_one_on_a_grid(word):
    left, right, bottom, top = word.extent
    n = 1200
    xs = np.linspace(left - 0.2, right + 0.2, n)
    ys = np.linspace(bottom - 0.2, top + 0.2, n // 3)
    grid = np.stack(np.meshgrid(xs, ys), -1)
    cell = (xs[1] - xs[0]) * (ys[1] - ys[0])
    assert np.exp(word.log_prob(grid)).sum() * cell == pytest.approx(1.0, rel=0.02)


def test_monte_carlo_entropy_matches_log_area(word):
    points = word.sample(10_000, seed=0)
    assert -word.log_prob(points).mean() == pytest.approx(word.entropy())


def test_frame_is_centred_and_fixed_width(word):
    left, right, bottom, top = word.extent
    assert (left, right) == pytest.approx((-3.0, 3.0))
    assert bottom == pytest.approx(-top)
    points = word.sample(50_000, seed=0)
    assert points[:, 0].min() >= left and points[:, 0].max() <= right


def test_rgba_array_and_boolean_mask_agree():
    grey = square_picture()
    rgba = np.ones(grey.shape + (4,))
    rgba[..., :3] = grey[..., None]
    mask = grey < 0.5
    a = PictureDistribution.from_image(rgba)
    b = PictureDistribution.from_image(mask)
    c = PictureDistribution.from_image((grey * 255).astype(np.uint8))
    np.testing.assert_array_equal(a.ink, b.ink)
    np.testing.assert_array_equal(a.ink, c.ink)


def test_transparent_pixels_are_paper():
    rgba = np.zeros((30, 30, 4))  # black everywhere, but only the square is opaque
    rgba[5:25, 5:25, 3] = 1.0
    assert PictureDistribution.from_image(rgba).ink.shape == (20, 20)


def test_image_file(tmp_path):
    import matplotlib.image

    path = tmp_path / "square.png"
    matplotlib.image.imsave(path, square_picture(), cmap="gray", vmin=0, vmax=1)
    target = PictureDistribution.from_image(path)
    assert target.ink.shape == (20, 20) and target.name == "square"


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_blank_text_is_rejected(text):
    with pytest.raises(ValueError, match="empty"):
        PictureDistribution.from_text(text)


def test_non_string_text_is_rejected():
    with pytest.raises(TypeError, match="text"):
        PictureDistribution.from_text(42)


def test_image_without_ink_is_rejected():
    with pytest.raises(ValueError, match="no dark pixels"):
        PictureDistribution.from_image(np.ones((10, 10)))


def test_image_all_ink_is_rejected():
    with pytest.raises(ValueError, match="every pixel"):
        PictureDistribution.from_image(np.zeros((10, 10)))


def test_missing_file_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        PictureDistribution.from_image(tmp_path / "nope.png")


def test_unreadable_file_is_rejected(tmp_path):
    path = tmp_path / "garbage.png"
    path.write_bytes(b"this is not a picture")
    with pytest.raises(ValueError, match="could not read"):
        PictureDistribution.from_image(path)


@pytest.mark.parametrize(
    "bad", [np.full((4, 4), np.nan), np.ones((2, 3, 5)), np.ones(7), np.full((4, 4), 2.0)]
)
def test_malformed_arrays_are_rejected(bad):
    with pytest.raises(ValueError):
        PictureDistribution.from_image(bad)


@pytest.mark.parametrize("count", [0, -5])
def test_non_positive_sample_count_is_rejected(word, count):
    with pytest.raises(ValueError, match="num_samples"):
        word.sample(count)


@pytest.mark.parametrize("count", [2.5, "10", True])
def test_non_integer_sample_count_is_rejected(word, count):
    with pytest.raises(TypeError, match="num_samples"):
        word.sample(count)


def test_bad_threshold_and_width_are_rejected():
    with pytest.raises(ValueError, match="threshold"):
        PictureDistribution.from_image(square_picture(), threshold=0.0)
    with pytest.raises(ValueError, match="width"):
        PictureDistribution.from_image(square_picture(), width=-1.0)


def test_log_prob_checks_its_shape(word):
    with pytest.raises(ValueError, match="shape"):
        word.log_prob(np.zeros((5, 3)))


def test_render_text_is_dark_ink_on_white():
    grey = render_text("A")
    assert grey.min() < 0.1 and grey.max() > 0.9
    assert 0.01 < (grey < 0.5).mean() < 0.5


def test_the_same_seed_gives_identical_samples_and_leaves_global_state_alone(word):
    # The promise of PictureDistribution.sample's docstring.
    before = np.random.get_state()[1].copy()
    first, again, other = word.sample(500, seed=3), word.sample(500, seed=3), word.sample(500, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    np.testing.assert_array_equal(word.sample(np.int64(500), seed=np.int32(3)), first)


@pytest.mark.parametrize(
    "seed,error",
    [(None, TypeError), (-1, ValueError), (2**31, ValueError), (1.5, TypeError), ("3", TypeError)],
)
def test_a_seed_that_could_not_repeat_is_refused(word, seed, error):
    with pytest.raises(error, match="seed"):
        word.sample(10, seed=seed)


def test_log_prob_refuses_nan_but_places_infinity_off_the_ink(word):
    with pytest.raises(ValueError, match="NaN"):
        word.log_prob(np.array([[np.nan, 0.0]]))
    assert word.log_prob(np.array([[np.inf, 0.0]]))[0] == -np.inf
    with pytest.raises(TypeError, match="numeric"):
        word.log_prob([["0", "0"]])


# --------------------------------------------------------------------------- issue 20
def light_on_dark_picture() -> np.ndarray:
    """Two light bars on a dark background: the dark pixels are the paper here."""
    grey = np.zeros((40, 60))
    grey[10:30, 10:20] = 1.0
    grey[10:30, 30:50] = 0.9
    return grey


def test_light_ink_on_dark_background_is_refused_or_inverted_on_request():
    with pytest.raises(ValueError, match="light ink on a dark background.*75% of it and 100% of its edge"):
        PictureDistribution.from_image(light_on_dark_picture())
    with pytest.raises(ValueError, match="invert=True"):  # the same as 8-bit RGB
        PictureDistribution.from_image(
            np.repeat((light_on_dark_picture() * 255).astype(np.uint8)[..., None], 3, -1)
        )
    bars = PictureDistribution.from_image(light_on_dark_picture(), invert=True)
    assert bars.ink.shape == (20, 40) and bars.ink.sum() == 20 * 10 + 20 * 20  # the two bars, cropped
    background = PictureDistribution.from_image(light_on_dark_picture(), invert=False)
    assert background.ink.shape == (40, 60) and background.ink.sum() == 40 * 60 - 600


def test_dark_ink_on_light_paper_and_boolean_masks_are_not_taken_for_inverted():
    # A square frame as a boolean mask (notebook 03's exercise): True is ink, whatever it covers.
    frame = np.ones((120, 120), dtype=bool)
    frame[30:90, 30:90] = False
    assert PictureDistribution.from_image(frame).ink.sum() == frame.sum()
    with pytest.raises(ValueError, match="~mask"):
        PictureDistribution.from_image(frame, invert=True)
    # Much dark ink, but paper all around it: not inverted.
    grey = np.ones((40, 40))
    grey[2:38, 2:38] = 0.0
    assert PictureDistribution.from_image(grey).ink.shape == (36, 36)
    assert not looks_inverted(grey < 0.5) and looks_inverted(light_on_dark_picture() < 0.5)


def test_text_the_font_cannot_draw_is_refused_without_rendering(monkeypatch):
    import matplotlib.backends.backend_agg

    def no_drawing(*args, **kwargs):
        raise AssertionError("check_text must not draw")

    monkeypatch.setattr(matplotlib.backends.backend_agg.FigureCanvasAgg, "draw", no_drawing)
    with pytest.raises(ValueError, match=r"characters the font 'DejaVu Sans' cannot draw \('漢', '字'\)"):
        check_text("漢字")
    with pytest.raises(ValueError, match="'No Such Font' is not a font matplotlib can find"):
        check_text("Flow", font_family="No Such Font")
    assert check_text("Héllo wörld") == "Héllo wörld"
    assert check_text("Flow", font_family="serif", font_weight="normal", font_size=np.int64(8)) == "Flow"


@pytest.mark.parametrize(
    "kwargs,error,words",
    [
        (dict(font_size=1), ValueError, "font_size must be at least 8, got 1"),  # was "please report this"
        (dict(font_size=10_000), ValueError, "font_size must be at most 500, got 10000"),  # was 41.7 GiB
        (dict(font_size=72.0), TypeError, "font_size must be an integer"),
        (dict(font_weight="fat"), ValueError, "font_weight must be one of"),
        (dict(font_family=None), TypeError, "font_family must be a string"),
        (dict(text="x" * 400), ValueError, "180 x 26,064 pixels, more than 4,000,000"),
    ],
)
def test_render_arguments_are_refused_with_their_name(kwargs, error, words):
    kwargs = {"text": "Flow", **kwargs}
    with pytest.raises(error) as raised:
        render_text(kwargs.pop("text"), **kwargs)
    assert words in str(raised.value)


def test_the_smallest_font_and_very_wide_letters_fit_their_canvas():
    # Ten W at 8 to 16 pixels touched the canvas border ("please report this").
    for font_size in (8, 12, 16):
        ink = render_text("WWWWWWWWWW", font_size=font_size) < 0.5
        assert ink.any() and not (ink[0].any() or ink[-1].any() or ink[:, 0].any() or ink[:, -1].any())

"""A target distribution over the plane defined by a picture.

The distribution is *uniform on the ink*: the dark pixels of a picture (a word rendered
as text, or any image) form a region ``A`` of the plane, and

.. math::  p(x) = 1 / |A|  \\text{ for } x \\in A, \\qquad p(x) = 0 \\text{ elsewhere}.

Because we know ``p`` exactly we also know its differential entropy,
``H[p] = log |A|``, which is the smallest expected negative log-likelihood any model can
reach on samples of ``p`` (see :mod:`flowlib.metrics`).

Coordinate frame (fixed, the same for every picture): the picture is cropped to the
bounding box of its ink, scaled so that the box is ``width`` units wide (default 6.0,
square pixels), and centred on the origin. ``x`` grows to the right and ``y`` upwards,
so the word reads normally in a plot.

Nothing here uses TensorFlow: the target is plain numpy, so mistakes in the input are
reported with a clear ``ValueError`` long before a model sees the data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowlib import validation

ImageSource = str | os.PathLike | np.ndarray

DEFAULT_WIDTH = 6.0
DEFAULT_FONT = "DejaVu Sans"  # ships with matplotlib, so the rendering works everywhere


# Text is drawn with font_size pixels per em on a canvas of 2.5 em by 0.9 em per character
# plus 2 em. Below 8 pixels letters are a few pixels tall (at 1 the canvas is too small to
# hold them); at 500 the canvas of a 4-letter word is 1,250 x 2,800 pixels, and the
# canvas is limited to 4 million pixels (its float64 RGBA copy takes 32 bytes a pixel).
MIN_FONT_SIZE = 8
MAX_FONT_SIZE = 500
MAX_CANVAS_PIXELS = 4_000_000


def _canvas_size(text: str, font_size: int) -> tuple[int, int]:
    """``(rows, cols)`` of the canvas :func:`render_text` draws ``text`` (stripped) on."""
    return int(font_size * 2.5), int(font_size * (0.9 * len(text) + 2))


def check_text(
    text: str, *, font_size: int = 72, font_family: str = DEFAULT_FONT, font_weight: str = "bold"
) -> str:
    """Check that ``text`` can be drawn by :func:`render_text`, without drawing it; return it.

    Cheap (no rendering, no TensorFlow): reads the font's character map. Refuses, with a
    ``TypeError`` or ``ValueError`` naming the argument and the value given:

    - text that is not a single line with something to draw;
    - ``font_size`` outside ``MIN_FONT_SIZE .. MAX_FONT_SIZE`` (8 .. 500 pixels), or text
      so long that its canvas would exceed ``MAX_CANVAS_PIXELS``;
    - a ``font_weight`` matplotlib does not know, a ``font_family`` it cannot find (it
      would silently draw in another font);
    - characters the font has no glyph for ("漢字" in DejaVu Sans): they would be drawn as
      empty boxes, and the flow would learn the boxes.
    """
    text = validation.line_of_text(text, "text")
    font_size = validation.integer(font_size, "font_size", minimum=MIN_FONT_SIZE, maximum=MAX_FONT_SIZE)
    for name, value in (("font_family", font_family), ("font_weight", font_weight)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {value!r}")
    rows, cols = _canvas_size(text.strip(), font_size)
    if rows * cols > MAX_CANVAS_PIXELS:
        raise ValueError(
            f"text of {len(text.strip())} characters at font_size {font_size} needs a canvas of "
            f"{rows:,} x {cols:,} pixels, more than {MAX_CANVAS_PIXELS:,}: use a shorter text or a smaller font_size"
        )
    # Imported here so that `import flowlib.data` stays cheap.
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    font_weight = validation.choice(font_weight, "font_weight", sorted(font_manager.weight_dict))
    properties = font_manager.FontProperties(family=font_family, weight=font_weight)
    try:
        path = font_manager.findfont(properties, fallback_to_default=False)
    except ValueError:
        shipped = sorted(
            {entry.name for entry in font_manager.fontManager.ttflist if entry.name.startswith("DejaVu")}
        )
        raise ValueError(
            f"font_family {font_family!r} is not a font matplotlib can find (it would draw in another "
            f"font instead); fonts that ship with matplotlib: {', '.join(shipped)}"
        ) from None
    charmap = FT2Font(path).get_charmap()
    missing = list(dict.fromkeys(c for c in text if not c.isspace() and ord(c) not in charmap))
    if missing:
        raise ValueError(
            f"text {text.strip()!r} has characters the font {font_family!r} cannot draw "
            f"({', '.join(repr(c) for c in missing)}): they would be drawn as empty boxes; "
            "choose a font_family that has them"
        )
    return text


def render_text(
    text: str, *, font_size: int = 72, font_family: str = DEFAULT_FONT, font_weight: str = "bold"
) -> np.ndarray:
    """Render ``text`` to a grey-scale array, 0.0 for ink and 1.0 for paper.

    The text is drawn with matplotlib's Agg renderer in a font matplotlib ships, so the
    result does not depend on the fonts installed on the machine. ``font_size`` is the
    height of the font in pixels (one point per pixel at 72 dpi), from 8 to 500; 72 gives
    letters about 50 pixels tall, fine enough that the pixel grid is invisible at the
    scale of a flow. The arguments are checked first by :func:`check_text`.

    Returns an array of shape ``[rows, cols]`` with values in ``[0, 1]``.
    """
    text = check_text(text, font_size=font_size, font_family=font_family, font_weight=font_weight)
    font_size = int(font_size)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    text = text.strip()
    height_px, width_px = _canvas_size(text, font_size)
    # A glyph touching the border would be cut off. The canvas above holds most texts; a
    # few very wide letters in a row (ten W at 8 to 16 pixels) need more width, so we
    # check and draw once more on a wider canvas rather than hope.
    for _ in range(2):
        fig = Figure(figsize=(width_px / 72, height_px / 72), dpi=72, facecolor="white")
        canvas = FigureCanvasAgg(fig)
        fig.text(
            0.5,
            0.5,
            text,
            ha="center",
            va="center",
            fontsize=font_size,
            family=font_family,
            weight=font_weight,
            color="black",
        )
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba(), dtype=np.float64) / 255.0
        grey = rgba[..., :3].mean(axis=-1)
        ink = grey < 0.5
        if not (ink[0].any() or ink[-1].any() or ink[:, 0].any() or ink[:, -1].any()):
            return grey
        width_px, height_px = int(width_px * 1.5) + 2 * font_size, height_px + 2 * font_size
    raise RuntimeError("rendered text touches the canvas border; please report this")


def _load_grey(image: ImageSource) -> np.ndarray:
    """Read a picture (path or array) as grey levels in [0, 1], 0 = dark; transparent = paper."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise ValueError(f"image file {str(path)!r} does not exist")
        import matplotlib.image

        try:
            array = np.asarray(matplotlib.image.imread(path))
        except Exception as error:  # PIL and matplotlib raise many kinds
            raise ValueError(f"could not read {str(path)!r} as an image: {error}") from None
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise TypeError(f"image must be a file path or a numpy array, got {type(image).__name__}")

    if array.dtype == bool:
        return np.where(array, 0.0, 1.0)  # a boolean array is an ink mask: True = ink
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"image array must be numeric or boolean, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float64) / 255.0
    else:
        array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError("image array contains NaN or infinite values")
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        grey = array[..., :3].mean(axis=-1)
        if array.shape[-1] == 4:  # transparent pixels are paper, whatever their colour
            grey = 1.0 - array[..., 3] * (1.0 - grey)
    elif array.ndim == 2:
        grey = array
    else:
        raise ValueError(
            f"image array must have shape [rows, cols], [rows, cols, 3] or [rows, cols, 4]; got {array.shape}"
        )
    if grey.min() < 0.0 or grey.max() > 1.0:
        raise ValueError("float image values must lie in [0, 1] (integers in [0, 255])")
    return grey


def looks_inverted(ink: np.ndarray) -> bool:
    """True if the ``ink`` (booleans ``[rows, cols]``) looks like the background of a picture.

    Ink on paper leaves the paper around it; a picture whose "ink" covers more than half
    of its pixels *and* more than half of the pixels on its edge is more likely light ink
    on a dark background. Cheap: two means, no TensorFlow.
    """
    ink = np.asarray(ink, dtype=bool)
    if ink.ndim != 2 or ink.size == 0:
        raise ValueError(f"ink must be a 2-D boolean array, got shape {ink.shape}")
    edge = np.concatenate([ink[0], ink[-1], ink[1:-1, 0], ink[1:-1, -1]])
    return bool(ink.mean() > 0.5 and edge.mean() > 0.5)


def _refuse_inverted(ink: np.ndarray, threshold: float) -> None:
    if ink.any() and not ink.all() and looks_inverted(ink):
        edge = np.concatenate([ink[0], ink[-1], ink[1:-1, 0], ink[1:-1, -1]])
        raise ValueError(
            f"the picture looks like light ink on a dark background: its dark pixels (grey level below "
            f"{threshold:g}) cover {ink.mean():.0%} of it and {edge.mean():.0%} of its edge, so the flow "
            "would learn the background; pass invert=True to take the light pixels as ink, or "
            "invert=False if the dark part really is the shape"
        )


@dataclass(frozen=True)
class PictureDistribution:
    """The uniform distribution on the ink of a picture, in a fixed 2-D frame.

    Build one with :meth:`from_text` or :meth:`from_image`.

    Attributes:
        ink: boolean array ``[rows, cols]``, True where the pixel is ink; row 0 is the top.
        pixel_size: side of one (square) pixel in plane units.
        name: a short label for figures.
    """

    ink: np.ndarray
    pixel_size: float
    name: str = "picture"

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_text(
        cls,
        text: str,
        *,
        width: float = DEFAULT_WIDTH,
        font_size: int = 72,
        font_family: str = DEFAULT_FONT,
        font_weight: str = "bold",
    ) -> PictureDistribution:
        """The distribution of points on the ink of ``text`` rendered in a bold font.

        Example::

            target = PictureDistribution.from_text("Flow")
            points = target.sample(10_000, seed=0)     # [10000, 2] float32
        """
        width = validation.positive_float(width, "width")
        grey = render_text(text, font_size=font_size, font_family=font_family, font_weight=font_weight)
        return cls.from_image(grey, width=width, name=text.strip(), invert=False)

    @classmethod
    def from_image(
        cls,
        image: ImageSource,
        *,
        threshold: float = 0.5,
        width: float = DEFAULT_WIDTH,
        name: str | None = None,
        invert: bool | None = None,
    ) -> PictureDistribution:
        """The distribution of points on the dark pixels of an image.

        ``image`` is a file path (PNG natively; other formats through Pillow) or an array:
        grey ``[rows, cols]``, RGB or RGBA ``[rows, cols, 3|4]`` (floats in [0, 1] or
        integers in [0, 255]; transparent pixels count as paper), or a boolean ink mask.
        A pixel is ink when its grey level is below ``threshold``.

        ``invert`` says which pixels are ink in a picture of grey levels:

        - ``None`` (default): the dark ones; a picture that looks like light ink on a dark
          background (dark pixels covering most of it *and* most of its edge) is refused
          with a ``ValueError``, since the flow would learn the background;
        - ``True``: the light ones (grey level above ``1 - threshold``), for light ink on
          dark paper;
        - ``False``: the dark ones, however much of the picture they cover.

        A boolean mask says itself what the ink is: ``invert`` must then be ``None``
        or ``False``.
        """
        threshold = validation.real(threshold, "threshold", minimum=0.0, maximum=1.0, minimum_inclusive=False)
        width = validation.positive_float(width, "width")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, got {name!r}")
        if invert is not None:
            invert = validation.boolean(invert, "invert")
        grey = _load_grey(image)
        mask_given = isinstance(image, np.ndarray) and image.dtype == bool
        if mask_given and invert:
            raise ValueError(
                "invert=True is for pictures of grey levels; invert a boolean ink mask with ~mask"
            )
        ink = (1.0 - grey) < threshold if invert else grey < threshold
        if invert is None and not mask_given:
            _refuse_inverted(ink, threshold)
        if not ink.any():
            raise ValueError(
                "the picture has no dark pixels to sample from; is it blank, or is the"
                f" threshold ({threshold}) too low?"
            )
        if ink.all():
            raise ValueError(
                "every pixel of the picture is dark, so it has no shape to learn; is the"
                f" image inverted (light ink on dark paper), or the threshold ({threshold}) too high?"
            )
        rows = np.flatnonzero(ink.any(axis=1))
        cols = np.flatnonzero(ink.any(axis=0))
        ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy()
        ink.setflags(write=False)
        if name is None:
            name = Path(image).stem if isinstance(image, (str, os.PathLike)) else "picture"
        return cls(ink=ink, pixel_size=width / ink.shape[1], name=name)

    # ----------------------------------------------------------------- geometry
    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(left, right, bottom, top)`` of the picture in plane units (for ``imshow``)."""
        rows, cols = self.ink.shape
        half_w, half_h = cols * self.pixel_size / 2, rows * self.pixel_size / 2
        return (-half_w, half_w, -half_h, half_h)

    @property
    def ink_area(self) -> float:
        """``|A|``, the area of the ink in plane units squared."""
        return float(self.ink.sum()) * self.pixel_size**2

    def entropy(self) -> float:
        """Differential entropy in nats: ``H = log |A|`` for a uniform density on ``A``."""
        return float(np.log(self.ink_area))

    # ----------------------------------------------------------------- sampling
    def sample(self, num_samples: int, *, seed: int = 0) -> np.ndarray:
        """Draw ``num_samples`` points uniformly on the ink, shape ``[num_samples, 2]`` float32.

        An ink pixel is picked uniformly, then a point uniformly inside it; since all
        pixels have the same area this is exactly uniform on ``A``. The same ``seed``
        (an integer >= 0) gives identical samples, and no global random state is touched.
        """
        num_samples = validation.positive_int(num_samples, "num_samples")
        rng = np.random.default_rng(validation.seed(seed))
        ink_rows, ink_cols = np.nonzero(self.ink)
        pick = rng.integers(len(ink_rows), size=num_samples)
        within = rng.random((num_samples, 2))
        left, _, _, top = self.extent
        x = left + (ink_cols[pick] + within[:, 0]) * self.pixel_size
        y = top - (ink_rows[pick] + within[:, 1]) * self.pixel_size
        return np.stack([x, y], axis=-1).astype(np.float32)

    def log_prob(self, points: np.ndarray) -> np.ndarray:
        """Exact log-density ``log p(x)``: ``-log|A|`` on the ink, ``-inf`` off it.

        ``points``: array ``[..., 2]``; returns float64 ``[...]``.
        """
        points = np.asarray(points.numpy() if hasattr(points, "numpy") else points)
        if points.dtype == bool or not (
            np.issubdtype(points.dtype, np.integer) or np.issubdtype(points.dtype, np.floating)
        ):
            raise TypeError(f"points must be a numeric array of shape [..., 2], got dtype {points.dtype}")
        points = points.astype(np.float64)
        if points.ndim < 1 or points.shape[-1] != 2:
            raise ValueError(f"points must have shape [..., 2], got {points.shape}")
        if np.isnan(points).any():  # no density at "not a number"; +-inf is simply off the ink
            raise ValueError("points contain NaN values")
        left, _, _, top = self.extent
        col = np.floor((points[..., 0] - left) / self.pixel_size)
        row = np.floor((top - points[..., 1]) / self.pixel_size)
        rows, cols = self.ink.shape
        inside = (col >= 0) & (col < cols) & (row >= 0) & (row < rows)
        on_ink = np.zeros(points.shape[:-1], dtype=bool)
        on_ink[inside] = self.ink[row[inside].astype(int), col[inside].astype(int)]
        return np.where(on_ink, -np.log(self.ink_area), -np.inf)

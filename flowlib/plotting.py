"""Figures used across the series, with the same colours for the same things.

- :func:`quadrant_colors`: the four quadrants of the *base* sample keep one colour each
  through every layer, so you can see where each part of the Gaussian ends up.
- :func:`plot_points`, :func:`plot_layer_grid`: quadrant-coloured points, one panel per layer.
- :func:`plot_density`: the target beside the learned density.
- :func:`plot_training_curve`: training and held-out NLL with the entropy bound.
- :func:`animate_layers`: the points flowing through the layers, saved as a GIF.
- :func:`save_figure`: write a figure to a file whole or not at all.

Every function returns the matplotlib ``Figure`` (or ``Axes``) it drew, and draws 2-D
maps with equal aspect. Files are written to a temporary file beside the target and
renamed over it, so an interrupted run never leaves a truncated picture.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from flowlib import validation

# Okabe-Ito colours (readable with every common colour-vision deficiency), one per
# quadrant, counter-clockwise from the upper right: (+,+), (-,+), (-,-), (+,-).
QUADRANT_COLORS = ("#E69F00", "#56B4E9", "#009E73", "#CC79A7")
TARGET_COLOR = "#222222"


def quadrant_colors(z: np.ndarray) -> np.ndarray:
    """The colour of each point by the quadrant of its *base* coordinates ``z[:, :2]``.

    ``z``: ``[num_points, dim]``; returns ``[num_points]`` hex strings.
    """
    z = validation.points(z, "z", min_points=0, finite=False)
    if z.shape[1] < 2:
        raise ValueError(f"z must have shape [num_points, >=2], got {z.shape}")
    right, up = z[:, 0] >= 0, z[:, 1] >= 0
    index = np.where(up, np.where(right, 0, 1), np.where(right, 3, 2))
    return np.asarray(QUADRANT_COLORS)[index]


def _check_limit(limit: float | None) -> float | None:
    return validation.optional_positive_float(limit, "limit")


def _check_extent(extent: Sequence[float]) -> tuple[float, float, float, float]:
    if isinstance(extent, (str, bytes)) or not isinstance(extent, (Sequence, np.ndarray)) or len(extent) != 4:
        raise TypeError(f"extent must be (left, right, bottom, top), got {extent!r}")
    left, right, bottom, top = (validation.real(value, "extent") for value in extent)
    if not (left < right and bottom < top):
        raise ValueError(
            f"extent must be (left, right, bottom, top) with left < right and bottom < top, "
            f"got {tuple(extent)}"
        )
    return left, right, bottom, top


def _new_file_mode() -> int:
    """The permissions ``open(path, "w")`` would give a new file (0666 less the umask)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def _atomic(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so the format is the same) and
    move it over ``path`` when the block succeeds; on failure remove it. A kill in between
    leaves the old file (or none) and a hidden ``.<name>.*`` temporary, never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(descriptor)
    temporary = Path(temporary)
    try:
        os.chmod(temporary, _new_file_mode())  # mkstemp's file is private (0600); a figure is not
        yield temporary
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def save_figure(fig, path: str | os.PathLike, **savefig_kwargs) -> Path:
    """``fig.savefig(path, **savefig_kwargs)``, whole or not at all; returns ``path``.

    The figure is written to a temporary file in the same folder and renamed over
    ``path`` (``os.replace``): a run killed while writing leaves the previous file, not
    an empty or truncated one. The format comes from the suffix, as with ``savefig``.
    """
    path = Path(path)
    with _atomic(path) as temporary:
        fig.savefig(temporary, **savefig_kwargs)
    return path


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def _square(ax, limit: float | None) -> None:
    ax.set_aspect("equal")
    if limit is not None:
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_points(
    points: np.ndarray,
    colors=None,
    *,
    ax=None,
    title: str | None = None,
    limit: float | None = 4.0,
    size: float = 1.0,
):
    """Scatter 2-D points (optionally quadrant-coloured) on square axes; returns the Axes."""
    points = validation.points(points, "points", dim=2, min_points=0, finite=False)  # matplotlib skips NaN
    limit = _check_limit(limit)
    size = validation.positive_float(size, "size")
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(
        points[:, 0],
        points[:, 1],
        s=size,
        c=TARGET_COLOR if colors is None else colors,
        linewidths=0,
        rasterized=True,
    )
    _square(ax, limit)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def _pretty(name: str) -> str:
    return name.replace("_", " ")


def plot_stages(
    stages: Sequence[tuple[str, np.ndarray]],
    colors,
    *,
    ncols: int = 5,
    limit: float | None = 4.0,
    size: float = 0.8,
    panel: float = 2.4,
):
    """One panel per ``(name, points)`` stage, as returned by :func:`flowlib.flows.trace`."""
    ncols = validation.positive_int(ncols, "ncols")
    plt = _pyplot()
    nrows = int(np.ceil(len(stages) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel * ncols, panel * nrows), squeeze=False)
    for ax in axes.flat[len(stages) :]:
        ax.axis("off")
    for index, ((name, points), ax) in enumerate(zip(stages, axes.flat)):
        plot_points(points, colors, ax=ax, limit=limit, size=size, title=f"{index}: {_pretty(name)}")
    fig.tight_layout()
    return fig


def plot_layer_grid(
    flow, *, num_samples: int = 8000, seed: int = 0, ncols: int = 5, limit: float | None = 4.0
):
    """The headline figure: base samples, coloured by quadrant, after every layer.

    Draws ``num_samples`` points from the standard normal base (seeded), follows them
    latent-to-data through each bijector of ``flow`` and returns the ``Figure``.
    """
    from flowlib import flows

    num_samples = validation.positive_int(num_samples, "num_samples")
    ncols, limit = validation.positive_int(ncols, "ncols"), _check_limit(limit)
    z = (
        np.random.default_rng(validation.seed(seed))
        .standard_normal((num_samples, flows.event_dim(flow)))
        .astype(np.float32)
    )
    return plot_stages(flows.trace(flow, z), quadrant_colors(z), ncols=ncols, limit=limit)


def density_grid(
    flow, extent: Sequence[float], *, resolution: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xs, ys, density)`` of ``flow`` on a ``resolution x resolution`` grid over ``extent``.

    ``extent = (left, right, bottom, top)``; ``density[i, j]`` is ``q(xs[j], ys[i])``.
    """
    from flowlib import metrics

    left, right, bottom, top = _check_extent(extent)
    resolution = validation.integer(resolution, "resolution", minimum=2)
    xs = np.linspace(left, right, resolution)
    ys = np.linspace(bottom, top, resolution)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    density = np.exp(metrics.log_prob(flow, grid)).reshape(resolution, resolution)
    return xs, ys, density


def frame_axes(ax, extent: Sequence[float]) -> None:
    """Show exactly ``extent = (left, right, bottom, top)`` with equal aspect and no ticks."""
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_density(flow, target, *, margin: float = 0.5, resolution: int = 200, title: str | None = None):
    """The target picture beside the flow's density on the same frame; returns the Figure."""
    margin = validation.real(margin, "margin", minimum=0.0)
    plt = _pyplot()
    left, right, bottom, top = target.extent
    extent = (left - margin, right + margin, bottom - margin, top + margin)
    _, _, density = density_grid(flow, extent, resolution=resolution)
    height = 3.0 * (extent[3] - extent[2]) / (extent[1] - extent[0])
    fig, axes = plt.subplots(1, 2, figsize=(12, max(height, 1.5) + 0.6))
    axes[0].imshow(target.ink, extent=target.extent, cmap="Greys", interpolation="nearest")
    axes[0].set_title(f"target: uniform on the ink of “{target.name}”", fontsize=10)
    axes[1].imshow(density, extent=extent, origin="lower", cmap="magma", interpolation="bilinear")
    axes[1].set_title(title or "learned density $q(x)$", fontsize=10)
    for ax in axes:
        frame_axes(ax, extent)
    fig.tight_layout()
    return fig


def plot_training_curve(
    history, *, entropy: float | None = None, ax=None, label: str | None = None, smooth: int = 25
):
    """Training NLL (smoothed over ``smooth`` steps), held-out NLL and the entropy bound."""
    plt = _pyplot()
    smooth = validation.positive_int(smooth, "smooth")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    loss = np.asarray(history.loss, dtype=float)
    if len(loss):
        window = max(1, min(smooth, len(loss)))
        smoothed = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax.plot(
            np.arange(window, len(loss) + 1),
            smoothed,
            lw=1.2,
            label=f"training NLL{' (' + label + ')' if label else ''}",
        )
    if history.validation_nll:
        ax.plot(
            history.validation_steps,
            history.validation_nll,
            "o-",
            ms=3,
            lw=1,
            label=f"held-out NLL{' (' + label + ')' if label else ''}",
        )
    if entropy is not None:
        ax.axhline(entropy, color="k", ls="--", lw=1, label="entropy bound $H[p]$")
    ax.set_xlabel("step")
    ax.set_ylabel("nats per point")
    ax.legend(frameon=False, fontsize=8)
    if len(loss):
        low = min(np.min(loss), entropy if entropy is not None else np.inf)
        ax.set_ylim(low - 0.2, np.percentile(loss, 98) + 0.3)
    return ax


def animate_layers(
    stages: Sequence[tuple[str, np.ndarray]],
    colors,
    path: str | Path,
    *,
    frames_per_layer: int = 8,
    limit: float = 4.0,
    fps: int = 12,
) -> Path:
    """Save a GIF of points moving from stage to stage (linear interpolation between layers).

    ``stages`` as from :func:`flowlib.flows.trace`; returns the path written.
    """
    plt = _pyplot()
    from matplotlib.animation import FuncAnimation, PillowWriter

    frames_per_layer = validation.positive_int(frames_per_layer, "frames_per_layer")
    fps = validation.positive_int(fps, "fps")
    limit = validation.positive_float(limit, "limit")
    if len(stages) < 2:
        raise ValueError(f"stages must hold at least two (name, points) stages to animate, got {len(stages)}")
    path = Path(path)
    fig, ax = plt.subplots(figsize=(4, 4))
    _square(ax, limit)
    scatter = ax.scatter(stages[0][1][:, 0], stages[0][1][:, 1], s=1, c=colors, linewidths=0)
    title = ax.set_title(_pretty(stages[0][0]), fontsize=10)
    frames = [
        (i, t) for i in range(len(stages) - 1) for t in np.linspace(0, 1, frames_per_layer, endpoint=False)
    ]
    frames += [(len(stages) - 2, 1.0)] * fps  # hold the final picture for a second

    def draw(frame):
        i, t = frame
        points = (1 - t) * stages[i][1] + t * stages[i + 1][1]
        scatter.set_offsets(points)
        title.set_text(f"{i + 1 if t > 0.5 else i}: {_pretty(stages[i + 1 if t > 0.5 else i][0])}")
        return scatter, title

    try:
        with _atomic(path) as temporary:
            FuncAnimation(fig, draw, frames=frames, blit=False).save(temporary, writer=PillowWriter(fps=fps))
    finally:
        plt.close(fig)
    return path

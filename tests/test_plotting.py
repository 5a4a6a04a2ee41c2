"""Figures: fixed quadrant colours, one panel per layer, files written."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from flowlib import flows, plotting, train


def test_quadrant_colours_are_fixed_per_quadrant():
    z = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [5.0, 0.1]])
    colours = plotting.quadrant_colors(z)
    assert list(colours[:4]) == list(plotting.QUADRANT_COLORS)
    assert colours[4] == plotting.QUADRANT_COLORS[0]
    with pytest.raises(ValueError):
        plotting.quadrant_colors(np.zeros(3))


def test_layer_grid_has_a_panel_per_stage():
    flow = flows.realnvp(num_layers=4, hidden_units=(8,))
    fig = plotting.plot_layer_grid(flow, num_samples=500, ncols=4)
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == len(flows.layers(flow)) + 1
    assert titled[0].get_title() == "0: base" and titled[1].get_title() == "1: affine coupling 0"
    plt.close(fig)
    with pytest.raises(ValueError, match="num_samples"):
        plotting.plot_layer_grid(flow, num_samples=0)


def test_density_and_training_curve(word):
    flow = flows.realnvp(num_layers=2, hidden_units=(8,), normalization="none")
    history = train.fit(flow, word.sample(2000), steps=20, progress=False)
    fig = plotting.plot_density(flow, word, resolution=40)
    assert len(fig.axes) == 2
    image = fig.axes[1].get_images()[0].get_array()
    assert image.shape == (40, 40) and np.all(np.isfinite(image)) and image.max() > 0
    ax = plotting.plot_training_curve(history, entropy=word.entropy())
    assert len(ax.get_lines()) == 2
    plt.close("all")


def test_animation_is_written(tmp_path):
    from conftest import perturb
    from PIL import Image

    flow = flows.realnvp(num_layers=2, hidden_units=(8,))
    perturb(flow, seed=1)  # identical frames would be merged by the GIF writer
    z = np.random.default_rng(0).standard_normal((200, 2)).astype(np.float32)
    stages = flows.trace(flow, z)
    path = plotting.animate_layers(
        stages, plotting.quadrant_colors(z), tmp_path / "a.gif", frames_per_layer=2, fps=4
    )
    with Image.open(path) as gif:
        assert gif.n_frames >= len(stages) - 1
        assert gif.size == (400, 400)


def test_a_figure_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    import os

    path = tmp_path / "figure.png"
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    assert plotting.save_figure(fig, path, dpi=50) == path
    first = path.read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as savefig would make it, not private

    def half_then_fail(self, target, **kwargs):
        with open(target, "wb") as file:  # half a picture, as when the process dies mid-write
            file.write(first[: len(first) // 2])
        raise OSError(28, "No space left on device (planted)")

    monkeypatch.setattr(type(fig), "savefig", half_then_fail)
    with pytest.raises(OSError, match="planted"):
        plotting.save_figure(fig, path)
    monkeypatch.undo()
    assert path.read_bytes() == first  # the previous picture, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]  # no temporary left
    plt.close(fig)


def test_a_figure_is_never_written_in_place(tmp_path, monkeypatch):
    # the target only ever appears by os.replace of a complete file beside it
    import os

    replaced = []
    real_replace = os.replace

    def replace(source, target):
        assert os.path.dirname(source) == os.path.dirname(target) and os.path.getsize(source) > 0
        replaced.append(os.path.basename(target))
        real_replace(source, target)

    monkeypatch.setattr(plotting.os, "replace", replace)
    fig, _ = plt.subplots(figsize=(2, 2))
    plotting.save_figure(fig, tmp_path / "new" / "f.png", dpi=50)
    plt.close(fig)
    z = np.random.default_rng(0).standard_normal((50, 2)).astype(np.float32)
    stages = [("base", z), ("shifted", z + 1.0)]
    plotting.animate_layers(
        stages, plotting.quadrant_colors(z), tmp_path / "a.gif", frames_per_layer=2, fps=2
    )
    assert replaced == ["f.png", "a.gif"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.gif", "f.png", "new"]

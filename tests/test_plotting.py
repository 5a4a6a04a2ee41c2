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

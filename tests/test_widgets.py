"""Widgets: static fall-backs without a front end; the interactive versions redraw."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
from conftest import perturb

from flowlib import flows, widgets


def test_frontend_guess_respects_the_override(monkeypatch):
    monkeypatch.setenv("FLOWLIB_WIDGETS", "0")
    assert widgets.interactive_frontend() is False
    monkeypatch.setenv("FLOWLIB_WIDGETS", "1")
    assert widgets.interactive_frontend() is True
    monkeypatch.delenv("FLOWLIB_WIDGETS")
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("VSCODE_PID", raising=False)
    assert widgets.interactive_frontend() is False  # pytest: no front end


def test_layer_explorer_static_is_the_layer_grid():
    flow = flows.realnvp(num_layers=2, hidden_units=(8,))
    fig = widgets.layer_explorer(flow, num_samples=300, static=True)
    assert len([ax for ax in fig.axes if ax.get_title()]) == len(flows.layers(flow)) + 1
    plt.close("all")


def test_layer_explorer_slider_and_toggle_redraw(word):
    flow = flows.realnvp(num_layers=2, hidden_units=(8,))
    perturb(flow, seed=1)
    explorer = widgets.layer_explorer(flow, data=word.sample(300), num_samples=300, static=False)
    (slider, toggle), caption = explorer.children[0].children, explorer.children[1]
    assert "flowlib-layer-explorer" in explorer._dom_classes
    assert caption.value.startswith("layer 0 / ")
    slider.value = slider.max
    assert caption.value.startswith(f"layer {slider.max} / ")
    toggle.value = "data → latent"
    assert "data → latent" in caption.value
    plt.close("all")


def test_layer_explorer_rejects_bad_sizes():
    with pytest.raises(ValueError, match="num_samples"):
        widgets.layer_explorer(flows.realnvp(num_layers=2, hidden_units=(8,)), num_samples=0)


def test_word_trainer_static_trains_and_draws():
    fig = widgets.word_trainer(text="Hi", steps=30, static=True, num_layers=2, hidden_units=(8,))
    assert len(fig.axes) == 2 and "gap" in fig.axes[1].get_title()
    plt.close("all")


def test_word_trainer_reports_a_bad_word():
    trainer = widgets.word_trainer(steps=10, static=False, num_layers=2, hidden_units=(8,))
    (box, button), message = trainer.children[0].children, trainer.children[1]
    box.value = "   "
    button.click()
    assert "Cannot train" in message.value and "empty" in message.value
    assert not button.disabled


def test_word_trainer_trains_on_click():
    trainer = widgets.word_trainer(text="Ok", steps=40, static=False, num_layers=2, hidden_units=(8,))
    (_, button), message = trainer.children[0].children, trainer.children[1]
    button.click()
    assert "gap" in message.value and not button.disabled
    plt.close("all")


@pytest.mark.parametrize(
    "kwargs,words",
    [
        (dict(num_layer=2), ("TypeError", "num_layer")),  # a misspelt keyword
        (dict(num_layers=2, hidden_units="8"), ("TypeError", "hidden_units")),
        (dict(num_layers=2, normalization="<b>norm</b>"), ("ValueError", "&lt;b&gt;norm")),  # shown, escaped
    ],
)
def test_word_trainer_shows_every_error_in_the_widget(kwargs, words):
    trainer = widgets.word_trainer(text="Ok", steps=5, static=False, **kwargs)
    (_, button), message = trainer.children[0].children, trainer.children[1]
    button.click()
    assert message.value.startswith("<b>Cannot train")
    for word in words:
        assert word in message.value
    assert "<b>norm</b>" not in message.value
    assert not button.disabled


def test_word_trainer_refuses_bad_arguments_at_once():
    with pytest.raises(ValueError, match="steps"):
        widgets.word_trainer(steps=0, static=False)
    with pytest.raises(TypeError, match="text"):
        widgets.word_trainer(text=7, static=False)

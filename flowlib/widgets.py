"""Interactive pieces for the notebooks (ipywidgets), with static fall-backs.

- :func:`layer_explorer`: a slider over the layers of a trained flow that redraws the
  quadrant-coloured points at that layer, with a direction toggle (latent to data, or
  data to latent).
- :func:`word_trainer`: a text box and a button that train a flow on your own word with a
  live loss plot and a progress bar, then show the result.

Widgets need a front end (JupyterLab, Notebook, Colab, VS Code). Where there is none, as
when nbval or nbconvert execute a notebook, each function draws the equivalent static
figure instead, so a notebook stays complete. ``static=None`` decides automatically.
"""

from __future__ import annotations

import html
import os
import sys
from typing import Any

import numpy as np


def interactive_frontend() -> bool:
    """True when a widget front end is likely attached to this kernel.

    Colab imports ``google.colab``; kernels started by Jupyter Server (JupyterLab,
    Notebook 7) get ``JPY_SESSION_NAME``; VS Code sets ``VSCODE_PID``. nbval and nbconvert
    set none of these. ``FLOWLIB_WIDGETS=1`` or ``0`` overrides the guess.
    """
    forced = os.environ.get("FLOWLIB_WIDGETS", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return "google.colab" in sys.modules or "JPY_SESSION_NAME" in os.environ or "VSCODE_PID" in os.environ


def _stages(flow, num_samples: int, seed: int, data):
    from flowlib import flows, plotting

    dim = flows.event_dim(flow)
    z = np.random.default_rng(seed).standard_normal((num_samples, dim)).astype(np.float32)
    forward = flows.trace(flow, z)
    colours_forward = plotting.quadrant_colors(z)
    if data is None:
        return {"latent → data": (forward, colours_forward)}
    backward = flows.trace_inverse(flow, np.asarray(data, dtype=np.float32)[:num_samples])
    # Colour data points by the quadrant they land in, so both directions share colours.
    colours_backward = plotting.quadrant_colors(backward[-1][1])
    return {"latent → data": (forward, colours_forward), "data → latent": (backward, colours_backward)}


def layer_explorer(
    flow, *, data=None, num_samples: int = 4000, seed: int = 0, limit: float = 4.0, static: bool | None = None
) -> Any:
    """A slider over the layers of ``flow``; returns the widget (or a static Figure).

    ``data``: optional data points ``[n, 2]``; with them the toggle offers the inverse
    direction (the word dissolving into a Gaussian).
    """
    from flowlib import plotting, validation

    num_samples = validation.positive_int(num_samples, "num_samples")
    seed, limit = validation.seed(seed), validation.positive_float(limit, "limit")
    directions = _stages(flow, num_samples, seed, data)
    if static is None:
        static = not interactive_frontend()
    if static:
        stages, colours = directions["latent → data"]
        return plotting.plot_stages(stages, colours, limit=limit)

    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import clear_output, display

    count = len(directions["latent → data"][0])
    slider = widgets.IntSlider(
        value=0,
        min=0,
        max=count - 1,
        description="layer",
        continuous_update=False,
        layout=widgets.Layout(width="420px"),
    )
    toggle = widgets.ToggleButtons(options=list(directions), description="direction")
    caption = widgets.HTML()
    caption.add_class("flowlib-layer-explorer-caption")
    output = widgets.Output()

    def redraw(*_):
        stages, colours = directions[toggle.value]
        name, points = stages[slider.value]
        caption.value = f"layer {slider.value} / {count - 1}: {name.replace('_', ' ')} ({toggle.value})"
        with output:
            clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(4.2, 4.2))
            plotting.plot_points(
                points, colours, ax=ax, limit=limit, title=f"{slider.value}: {name.replace('_', ' ')}"
            )
            display(fig)
            plt.close(fig)

    slider.observe(redraw, names="value")
    toggle.observe(redraw, names="value")
    redraw()
    explorer = widgets.VBox([widgets.HBox([slider, toggle]), caption, output])
    explorer.add_class("flowlib-layer-explorer")
    return explorer


def word_trainer(*, text: str = "Ada", steps: int = 1500, static: bool | None = None, **flow_kwargs) -> Any:
    """Train the headline flow (:data:`flowlib.recipe.HEADLINE`) on a word typed in a text box.

    ``flow_kwargs`` change fields of the recipe (e.g. ``num_layers=4``); a live loss plot
    follows the training. Returns the widget; without a front end (or ``static=True``) it trains on ``text``
    once and returns the density figure.
    """
    from flowlib import data as data_module
    from flowlib import metrics, plotting, recipe, train, validation

    steps = validation.positive_int(steps, "steps")
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {text!r}")

    def run(target, on_progress=None):
        chosen = recipe.HEADLINE.replace(**flow_kwargs)
        flow = chosen.build()
        # Without XLA: for a run of a few thousand steps its compilation costs what it saves.
        fit_kwargs = {**chosen.fit_kwargs(), "jit_compile": False}
        history = train.fit(
            flow, target.sample(50_000, seed=0), steps=steps, callback=on_progress, **fit_kwargs
        )
        result = metrics.evaluate(flow, target, target.sample(10_000, seed=1))
        return target, flow, history, result

    if static is None:
        static = not interactive_frontend()
    if static:
        target, flow, _, result = run(data_module.PictureDistribution.from_text(text))
        return plotting.plot_density(
            flow, target, resolution=150, title=f"learned density (gap {result.gap:.3f} nats)"
        )

    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import clear_output, display

    box = widgets.Text(value=text, description="word")
    button = widgets.Button(description="train", button_style="primary")
    message = widgets.HTML()
    output = widgets.Output()
    losses: list[float] = []

    def show_loss(step: int, loss: np.ndarray) -> None:
        losses.extend(float(v) for v in loss)
        with output:
            clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(6, 2.5))
            ax.plot(losses, lw=1)
            ax.set_xlabel("step")
            ax.set_ylabel("training NLL (nats)")
            display(fig)
            plt.close(fig)

    def on_click(_):
        losses.clear()
        button.disabled = True
        try:
            try:
                target = data_module.PictureDistribution.from_text(box.value)
            except ValueError as error:  # the word: empty, several lines, ...
                message.value = f"<b>Cannot train on that word:</b> {html.escape(str(error))}"
                return
            try:
                target, flow, _, result = run(target, show_loss)
            except (
                Exception
            ) as error:  # anything else (e.g. a bad keyword argument): show it, never swallow it
                message.value = f"<b>Cannot train:</b> {type(error).__name__}: {html.escape(str(error))}"
                return
        finally:
            button.disabled = False
        message.value = f"{result}"
        with output:
            display(plotting.plot_density(flow, target, resolution=150))
            plt.close("all")

    button.on_click(on_click)
    return widgets.VBox([widgets.HBox([box, button]), message, output])

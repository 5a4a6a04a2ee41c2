"""Make executed notebooks read well where they are shown (GitHub, nbviewer), then commit.

1. TensorFlow's start-up noise: on a machine without a GPU, importing TensorFlow prints
   lines such as "Unable to register cuDNN factory" or "failed call to cuInit" to stderr
   before any logging setting is read. They say nothing to a reader. Exactly those lines
   are removed from stderr outputs (and an output left empty); everything else, warnings
   included, stays.
2. Progress bars: in Jupyter, tqdm draws a widget whose plain-text fallback (what GitHub
   shows) is the bar as it was drawn first, "0%". The final state of the widget is saved in
   the notebook's widget metadata; the fallback text is rewritten from it, so the
   committed output shows the finished bar ("training: 100%|##########| 2000/2000 [...]").

Usage: python tools/clean_outputs.py notebooks/NN_name.ipynb ...
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

NOISE = re.compile(
    r"cuda_(fft|dnn|blas|platform)\.cc|computation_placer\.cc|cpu_feature_guard\.cc|"
    r"All log messages before absl::InitializeLog|rebuild TensorFlow with the appropriate compiler flags|"
    r"oneDNN custom operations are on|TF_ENABLE_ONEDNN_OPTS|oneDNN supports DT_INT32 only|cudart_stub\.cc|Could not find cuda drivers"
)


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def finished_bar(model_id: str, state: dict) -> str | None:
    """The text of a tqdm widget (HBox of HTML, FloatProgress, HTML) in its saved final state."""
    import html

    box = state.get(model_id, {})
    children = [
        state.get(child.replace("IPY_MODEL_", ""), {}) for child in box.get("state", {}).get("children", [])
    ]
    if box.get("model_name") != "HBoxModel" or [c.get("model_name") for c in children] != [
        "HTMLModel",
        "FloatProgressModel",
        "HTMLModel",
    ]:
        return None
    prefix, progress, suffix = (c.get("state", {}) for c in children)
    value, total = progress.get("value") or 0.0, progress.get("max") or 0.0
    filled = int(10 * value / total) if total else 0
    bar = "#" * filled + " " * (10 - filled)
    text = f"{prefix.get('value', '')}|{bar}|{suffix.get('value', '')}"
    return html.unescape(text).replace("\u2007", " ")


def clean(path: Path) -> int:
    notebook = nbformat.read(path, as_version=4)
    removed = 0
    state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is not None:
                text = finished_bar(view.get("model_id", ""), state)
                if text is not None and output.data.get("text/plain") != text:
                    output.data["text/plain"] = text
                    removed += 1
            if output.output_type == "stream" and output.name == "stderr":
                lines = output.text.splitlines(keepends=True)
                good = [line for line in lines if not NOISE.search(line)]
                removed += len(lines) - len(good)
                if not "".join(good).strip():
                    continue
                output.text = "".join(good)
            kept.append(output)
        cell.outputs = kept
    if removed:
        nbformat.write(notebook, path)
    return removed


def main(paths: list[str]) -> int:
    for name in paths:
        print(f"{name}: {clean(Path(name))} lines of start-up noise removed or progress bars finished")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

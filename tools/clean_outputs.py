"""Drop TensorFlow's start-up noise from notebook outputs before they are committed.

On a machine without a GPU, importing TensorFlow prints lines such as "Unable to register
cuDNN factory" or "failed call to cuInit" to stderr before any logging setting is read.
They say nothing to a reader. This removes exactly those lines from stderr outputs (and
an output left empty); everything else, warnings included, stays.

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
    r"oneDNN custom operations are on|TF_ENABLE_ONEDNN_OPTS|cudart_stub\.cc|Could not find cuda drivers"
)


def clean(path: Path) -> int:
    notebook = nbformat.read(path, as_version=4)
    removed = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
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
        print(f"{name}: removed {clean(Path(name))} lines of start-up noise")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

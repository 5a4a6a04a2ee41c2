"""Structure of the notebook series: pairs in sync, Colab cells, outputs, exercises.

Executing the notebooks is nbval's job (`make notebooks-test`); these tests check what a
reader sees before running anything.
"""
from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from flowlib import config

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
IDS = [path.stem for path in NOTEBOOKS]


def test_the_series_is_numbered_without_gaps():
    numbers = [int(path.name[:2]) for path in NOTEBOOKS]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) >= 7


def cells_of(notebook):
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_pair_is_in_sync(path):
    twin = path.with_suffix(".py")
    assert twin.is_file(), f"{path.name} has no py:percent twin"
    assert "format_name: percent" in twin.read_text()
    from_ipynb = jupytext.read(path)
    from_py = jupytext.read(twin)
    assert cells_of(from_py) == cells_of(from_ipynb), (
        f"{path.name} and {twin.name} differ: run `make sync` (jupytext --sync)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_first_cells_badge_and_colab_setup(path):
    notebook = nbformat.read(path, as_version=4)
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {path.name[:2]}")
    badge = config.colab_url(f"notebooks/{path.name}")  # tests/test_config.py checks every link's ref
    assert badge in first.source, "the Colab badge must point at this notebook"
    assert "After this notebook you can" in first.source and "Prerequisites" in first.source
    setup = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert 'if "google.colab" in sys.modules:' in setup.source
    assert f"git+https://github.com/{config.REPOSITORY}@{config.REF}" in setup.source
    assert "--no-deps" in setup.source  # never reinstall Colab's TensorFlow
    assert "flowlib.config.check_environment()" in setup.source
    assert "FAST = flowlib.fast_mode()" in setup.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_outputs_are_from_a_full_run(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code), "run `make notebooks`"
    outputs = [output for cell in code for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure in the outputs"
    setup_text = "".join(o.get("text", "") for o in code[0].outputs)
    assert "fast mode: off" in setup_text, "committed outputs must come from the full mode"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_ends_with_summary_and_exercises(path):
    notebook = nbformat.read(path, as_version=4)
    markdown = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    assert any(re.search(r"^#+ *Summary", text, re.M) for text in markdown)
    exercises = [i for i, cell in enumerate(notebook.cells)
                 if cell.cell_type == "markdown" and re.match(r"#+ *Exercise \d", cell.source)]
    assert len(exercises) >= 3
    for index in exercises:
        solution = notebook.cells[index + 1]
        assert solution.cell_type == "code"
        assert solution.source.count("### BEGIN SOLUTION") == solution.source.count("### END SOLUTION") >= 1
        assert re.search(r"\bassert\b|assert_allclose|assert_array", solution.source), "checks must be visible"


def test_readme_lists_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert f"notebooks/{path.name}" in readme
        assert config.colab_url(f"notebooks/{path.name}") in readme

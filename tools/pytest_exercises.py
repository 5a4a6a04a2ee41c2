"""A pytest plugin: while nbval executes a notebook, prove that its exercises' checks work.

``make notebooks-test`` and ``make test-colab`` (which CI runs) load it
(``pytest -p tools.pytest_exercises --nbval-lax ...``); ``make test`` does not, to stay short.
nbval executes each notebook once, cell by cell, in one kernel. Just before a cell with
``### BEGIN SOLUTION`` blocks, this plugin runs in that kernel, for each block, the student's
blank and every answer planted in ``tests/exercise_mutations/NN_name.yaml`` (see
``tools/exercises.py``): the blank must raise ``NotImplementedError``; an honest mistake must
fail the cell's own checks and the exercise's hidden tests (``tests/grading/NN_name/exK.py``,
what a teacher grades with); a shortcut must fail the hidden tests; a right answer written
differently must pass both. Then nbval runs the real cell, which must pass, and the hidden
tests must pass on it. A variant that does not behave as it must fails that cell's test, with
the variant named. A variant that replaces a flowlib function (a shortcut may swap
``train.fit`` for a longer training) is undone before the next one runs. So each notebook is
executed once, and the student copies' blanks, the checks' teeth and the hidden tests are
proved on the way.
"""

from __future__ import annotations

from pathlib import Path
from queue import Empty

import pytest

from tools import exercises, grading


def pytest_configure(config: pytest.Config) -> None:
    """nbval's kernels start with the test harness installed (tests/harness/fast_mode.py).

    Its IPython start-up shortens training when ``FLOWLIB_FAST=1`` (the Makefile sets it); an
    ``IPYTHONDIR`` already set (the Makefile's, the Colab-like run's) is kept.
    """
    import os

    from tools import harness

    os.environ.setdefault("IPYTHONDIR", harness.kernel_environment()["IPYTHONDIR"])


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--exercise-mutations",
        default=str(exercises.MUTATIONS_DIR),
        help="folder of the planted answers, NN_name.yaml per notebook",
    )
    parser.addoption(
        "--grading-tests",
        default=str(grading.GRADING_DIR),
        help="folder of the hidden tests, NN_name/exK.py per exercise",
    )


def _run_in_kernel(kernel, source: str, timeout: float) -> tuple[str, str] | None:
    """Execute ``source`` in nbval's kernel; return (error name, message), or None if it passed."""
    msg_id = kernel.execute_cell_input(source, allow_stdin=False)
    try:
        while True:
            reply = kernel.get_message(stream="shell", timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        kernel.await_idle(msg_id, timeout)  # drain this execution's outputs
    except Empty:
        kernel.interrupt()
        return "Timeout", f"no reply in {timeout:g} s"
    content = reply["content"]
    return (content["ename"], content["evalue"]) if content["status"] == "error" else None


# A planted answer may replace a flowlib function (a shortcut that swaps ``train.fit`` for a
# longer training, say); the attributes of flowlib's modules are saved before a cell's
# variants and put back after each one, so that no variant changes what the next one, or the
# notebook's own cell, runs.
_SAVE_FLOWLIB = """
import sys as _exercise_sys
_exercise_saved_flowlib = {
    _name: dict(vars(_module)) for _name, _module in list(_exercise_sys.modules.items())
    if _name == "flowlib" or _name.startswith("flowlib.")
}
"""
_RESTORE_FLOWLIB = """
for _name, _saved in _exercise_saved_flowlib.items():
    for _key, _value in _saved.items():
        if vars(_exercise_sys.modules[_name]).get(_key) is not _value:
            setattr(_exercise_sys.modules[_name], _key, _value)
"""


def _entries_of_cell(item) -> list[dict]:
    """The yaml entries of this cell's solution blocks (the notebook's are loaded once)."""
    notebook = item.parent
    if not hasattr(notebook, "_exercise_entries"):
        directory = Path(item.config.getoption("exercise_mutations"))
        grading_dir = Path(item.config.getoption("grading_tests"))
        notebook._exercise_entries = exercises.load_mutations(Path(notebook.path), directory, grading_dir)
    code = [cell for cell in notebook.nb.cells if cell.cell_type == "code"]
    before = sum(len(exercises.solution_blocks(cell.source)) for cell in code[: item.cell_num])
    count = len(exercises.solution_blocks(item.cell.source))
    return notebook._exercise_entries[before : before + count]


def _outcome(error: tuple[str, str] | None) -> str:
    return "passed" if error is None else f"raised {error[0]}: {error[1][:300]}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    cell = getattr(item, "cell", None)
    if cell is None or not exercises.solution_blocks(cell.source):
        return (yield)
    kernel = item.parent.kernel
    timeout = item.config.getoption("nbval_cell_timeout")
    entries = _entries_of_cell(item)
    stem = Path(item.parent.path).stem
    grading_dir = Path(item.config.getoption("grading_tests"))
    paths = {
        entry["hidden"]: grading.hidden_tests_path(stem, entry["hidden"], grading_dir) for entry in entries
    }
    runners = {name: grading.hidden_runner(path) for name, path in paths.items()}
    # A wrong answer need only fail one hidden case: its runner stops there.
    first_failure = {name: grading.hidden_runner(path, first_failure=True) for name, path in paths.items()}
    hidden_of = {entry["block"]: entry["hidden"] for entry in entries}
    problems = []
    _run_in_kernel(kernel, _SAVE_FLOWLIB, timeout)
    for label, source, kind, expected, block in exercises.planted_variants(cell.source, entries):
        error = _run_in_kernel(kernel, source, timeout)
        if kind == "blank":
            if error is None or error[0] != "NotImplementedError":
                problems.append(f"{label}: expected NotImplementedError, but it {_outcome(error)}")
            continue
        if kind == "mutants" and (error is None or error[0] != expected):
            problems.append(f"{label}: the cell's checks should raise {expected}, but it {_outcome(error)}")
        if kind == "right" and error is not None:
            problems.append(
                f"{label}: a right answer should pass the cell's checks, but it {_outcome(error)}"
            )
        runner = (runners if kind == "right" else first_failure)[hidden_of[block]]
        hidden = _run_in_kernel(kernel, runner, timeout)
        if kind == "right" and hidden is not None:
            problems.append(
                f"{label}: a right answer should pass the hidden tests, but they {_outcome(hidden)}"
            )
        if kind != "right" and hidden is None:
            problems.append(f"{label}: a wrong answer passed the hidden tests")
        if (restore_error := _run_in_kernel(kernel, _RESTORE_FLOWLIB, timeout)) is not None:
            problems.append(f"{label}: flowlib could not be put back: {_outcome(restore_error)}")
    result = yield  # the real solution, run by nbval
    for name, runner in runners.items():
        hidden = _run_in_kernel(kernel, runner, timeout)
        if hidden is not None:
            problems.append(f"the solution fails the hidden tests {name}: {_outcome(hidden)}")
    if problems:
        item.raise_cell_error(
            "The exercise's checks or hidden tests do not tell right from wrong:\n" + "\n".join(problems)
        )
    return result

"""A pytest plugin: while nbval executes a notebook, prove that its exercises' checks work.

``make notebooks-test`` loads it (``pytest -p tools.pytest_exercises --nbval-lax ...``).
nbval executes each notebook once, cell by cell, in one kernel. Just before a cell with
``### BEGIN SOLUTION`` blocks, this plugin runs in that kernel, for each block, the
student's blank (which must raise ``NotImplementedError``) and every wrong answer planted in
``tests/exercise_mutations/NN_name.yaml`` (each must make the cell's own checks fail); then
nbval runs the real cell, which must pass. A variant that does not fail as it must fails
that cell's test, with the variant named. So each notebook is executed once, and the
student copies' blanks and the checks' teeth are proved on the way (see tools/exercises.py).
"""

from __future__ import annotations

from pathlib import Path
from queue import Empty

import pytest

from tools import exercises


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--exercise-mutations",
        default=str(exercises.MUTATIONS_DIR),
        help="folder of the planted wrong answers, NN_name.yaml per notebook",
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


def _entries_of_cell(item) -> list[dict]:
    """The yaml entries of this cell's solution blocks (the notebook's are loaded once)."""
    notebook = item.parent
    if not hasattr(notebook, "_exercise_entries"):
        directory = Path(item.config.getoption("exercise_mutations"))
        notebook._exercise_entries = exercises.load_mutations(Path(notebook.path), directory)
    code = [cell for cell in notebook.nb.cells if cell.cell_type == "code"]
    before = sum(len(exercises.solution_blocks(cell.source)) for cell in code[: item.cell_num])
    count = len(exercises.solution_blocks(item.cell.source))
    return notebook._exercise_entries[before : before + count]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    cell = getattr(item, "cell", None)
    if cell is None or not exercises.solution_blocks(cell.source):
        return (yield)
    timeout = item.config.getoption("nbval_cell_timeout")
    problems = []
    for label, source, expected in exercises.planted_variants(cell.source, _entries_of_cell(item)):
        error = _run_in_kernel(item.parent.kernel, source, timeout)
        if error is None or error[0] != expected:
            outcome = "passed the checks" if error is None else f"raised {error[0]}: {error[1][:200]}"
            problems.append(f"{label}: expected {expected}, but it {outcome}")
    result = yield  # the real solution, run by nbval
    if problems:
        item.raise_cell_error("The exercise's checks do not catch a planted answer:\n" + "\n".join(problems))
    return result

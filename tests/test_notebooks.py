"""Structure of the notebook series: pairs in sync, Colab cells, outputs, exercises.

Executing the notebooks is nbval's job (`make notebooks-test`); these tests check what a
reader sees before running anything.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from flowlib import config

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
IDS = [path.stem for path in NOTEBOOKS]

# The setup cell every notebook starts with (COMMON.md), word for word but for the ref.
SETUP = f"""# Setup. In Colab: install flowlib from the series' repository, keeping Colab's TensorFlow.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic(
        "pip", 'install --quiet --no-deps "git+https://github.com/{config.REPOSITORY}@{config.REF}"')

try:
    import flowlib
except ModuleNotFoundError:
    raise ModuleNotFoundError(
        "flowlib is not installed: in Colab, check the network and run this cell again; "
        "on your machine, run `make venv` and choose the .venv kernel.") from None

flowlib.config.check_environment()"""

# What a reader must not see: the test harness's switches and vocabulary.
SCAFFOLDING = re.compile(
    r"\bpick\(|(?-i:\bFAST\b)|fast[ -]mode|FLOWLIB_FAST|(?-i:\bCI\b)|nbval|benchmark", re.I
)


def _exercises_tool():
    spec = importlib.util.spec_from_file_location("exercises_tool", ROOT / "tools" / "exercises.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
        f"{path.name} and {twin.name} differ: run `make sync` (jupytext --sync)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_first_cells_badge_and_colab_setup(path):
    notebook = nbformat.read(path, as_version=4)
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {path.name[:2]}")
    badge = config.colab_url(f"notebooks/{path.name}")  # tests/test_config.py checks every link's ref
    assert badge in first.source, "the Colab badge must point at this notebook"
    assert "After this notebook you can" in first.source and "Prerequisites" in first.source
    setup = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert setup.source.strip() == SETUP, "the first code cell must be the series' setup cell (COMMON.md)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_the_reader_sees_no_test_scaffolding(path):
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        found = SCAFFOLDING.search(cell.source)
        assert found is None, f"cell {index} shows {found.group(0)!r}: keep the harness out of the lecture"


# What the reader's view (markdown and committed outputs) must not talk about: the project's
# workshop (benchmarks and their result files, CI, the fast mode, the machine it ran on, the
# student copies) and leftovers of one run (temporary paths).
WORKSHOP_TALK = re.compile(
    r"bench/|\bresults/\w+\.(?:txt|md)|(?-i:\bCI\b)|fast[ -]mode|FLOWLIB_FAST|shared (?:2-core )?CPU"
    r"|\b(?:this|the|a shared|a loaded|a quiet) machine\b|student copy|/tmp/",
    re.I,
)


def _output_text(output) -> str:
    if "data" in output:
        return "".join(output["data"].get("text/markdown", "")) + "".join(
            output["data"].get("text/plain", "")
        )
    return "".join(output.get("text", ""))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_the_reader_sees_a_lecture_not_the_workshop(path):
    """No talk of bench/, results files, CI, the fast mode, the machine or the student copies
    in markdown or committed outputs; no progress bar stopped before its end; one version
    line per notebook."""
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        texts = (
            [cell.source]
            if cell.cell_type == "markdown"
            else [_output_text(o) for o in cell.get("outputs", [])]
        )
        for text in texts:
            found = WORKSHOP_TALK.search(text)
            assert found is None, (
                f"cell {index} shows {found.group(0)!r}: {text[max(0, found.start() - 60) : found.end() + 60]!r}"
            )
            for bar in re.findall(r"\b(\d{1,3})%\|", text):
                assert bar == "100", f"cell {index} shows a progress bar stopped at {bar}%"
    versions = [
        index
        for index, cell in enumerate(notebook.cells)
        for output in cell.get("outputs", [])
        if re.search(r"^tensorflow \d", _output_text(output), re.M)
    ]
    assert len(versions) == 1, f"the versions are printed by cells {versions}: once is enough"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_the_twin_is_valid_python(path):
    """`python notebooks/NN_name.py` must at least parse (an `if` before a comment-only body does not)."""
    twin = path.with_suffix(".py")
    compile(twin.read_text(), str(twin), "exec")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_outputs_are_from_a_full_run(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code), "run `make notebooks`"
    outputs = [output for cell in code for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure in the outputs"
    setup_text = "".join(o.get("text", "") for o in code[0].outputs)
    assert "tensorflow" in setup_text and "FLOWLIB_FAST" not in setup_text, (
        "committed outputs must come from a full run (run `make notebooks`)"
    )
    for output in outputs:
        plain = output.get("data", {}).get("text/plain", "") if "data" in output else ""
        assert not re.search(r"\b0%\|", plain), (
            f"a progress bar frozen at 0%: {plain[:80]!r} (tools/clean_outputs.py)"
        )
        assert not plain.startswith(("VBox(", "HBox(")), "a widget with no static fallback in the outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_ends_with_summary_and_exercises(path):
    notebook = nbformat.read(path, as_version=4)
    markdown = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    assert any(re.search(r"^#+ *Summary", text, re.M) for text in markdown)
    exercises = [
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "markdown" and re.match(r"#+ *Exercise \d", cell.source)
    ]
    assert len(exercises) >= 3
    for index in exercises:
        # The exercise's code cells (up to the next text): one may prepare, one holds the solution.
        following = notebook.cells[index + 1 :] + [nbformat.v4.new_markdown_cell("")]
        cells = following[: next(n for n, cell in enumerate(following) if cell.cell_type == "markdown")]
        solutions = [cell.source for cell in cells if "### BEGIN SOLUTION" in cell.source]
        assert len(solutions) == 1, f"{notebook.cells[index].source[:40]!r}: one cell with a solution"
        assert solutions[0].count("### BEGIN SOLUTION") == solutions[0].count("### END SOLUTION")
        assert re.search(r"\bassert\b|assert_allclose|assert_array", solutions[0]), "checks must be visible"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_every_exercise_has_planted_wrong_answers(path):
    """tests/exercise_mutations/NN_name.yaml lists mutants for each solution block, in order."""
    tool = _exercises_tool()
    entries = tool.load_mutations(path)  # raises if missing, miscounted or too thin
    assert entries, f"{path.name} has no solution blocks"
    assert tool.cross_cell_uses(nbformat.read(path, as_version=4)) == []


def test_mutation_files_belong_to_notebooks():
    names = {path.stem for path in NOTEBOOKS}
    for where in (ROOT / "tests" / "exercise_mutations").glob("*.yaml"):
        assert where.stem in names, f"{where.name} has no notebook"


def test_the_exercise_tool_sees_what_a_student_copy_would_break(tmp_path):
    """The machinery itself: a missing yaml, and a later cell using a blank's name, are caught."""
    tool = _exercises_tool()
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "def f(x):\n    ### BEGIN SOLUTION hint: h\n    return x\n    ### END SOLUTION\n\n"
                "assert f(1) == 1\nresult = f(2)"
            ),
            nbformat.v4.new_code_cell("print(result)"),
        ]
    )
    assert tool.cross_cell_uses(notebook) == ["cell 1 uses 'result', which cell 0 binds after a blank"]
    path = tmp_path / "99_nothing.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(ValueError, match="no tests/exercise_mutations/99_nothing.yaml"):
        tool.load_mutations(path)
    source = notebook.cells[0].source
    replaced = tool.with_block_replaced(source, 0, "y = x\nreturn -y\n")
    assert "    y = x\n    return -y\n" in replaced and "BEGIN SOLUTION" not in replaced


def test_readme_lists_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert f"notebooks/{path.name}" in readme
        assert config.colab_url(f"notebooks/{path.name}") in readme


def test_bench_images_trains_notebook_09s_recipe():
    """bench/images.py reports on notebook 09's image flow: its steps, batch and rate are the
    notebook's (section 7's call of `train.fit`). RECIPE is read from the source, not imported:
    importing a bench script puts bench/ first on sys.path, where bench/profile.py would
    shadow the standard library's `profile` for every later test."""
    source = (ROOT / "notebooks" / "09_images_bits_per_dimension.py").read_text()
    call = re.search(
        r"train\.fit\(inner_flow, z_train, steps=(\d+), batch_size=(\d+), learning_rate=([0-9.e-]+)", source
    )
    assert call, "notebook 09 no longer trains with train.fit(inner_flow, z_train, steps=..., ...)"
    tree = ast.parse((ROOT / "bench" / "images.py").read_text())
    (recipe,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["RECIPE"]
    ]
    recipe = {keyword.arg: ast.literal_eval(keyword.value) for keyword in recipe.keywords}
    assert (recipe["steps"], recipe["batch_size"], recipe["learning_rate"]) == (
        int(call[1]),
        int(call[2]),
        float(call[3]),
    )


def test_notebook_07_states_the_shipped_recipe_and_computes_its_tables():
    """07 names the post's code as published (commit bc20b0b, Adam 1e-5) and the commit that
    lowered the rate and added the failure trial; its failure table is computed by a code
    cell, not typed into markdown; no benchmark or results file is cited; sections 1-6 all
    have their headings."""
    notebook = nbformat.read(ROOT / "notebooks" / "07_training_stability.ipynb", as_version=4)
    markdown = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    for fact in ("bc20b0b", "74e336a", "adab3f6", "run_statistics_trial", "10^{-5}", "i % 2 == 0"):
        assert fact in markdown, f"notebook 07 no longer states {fact!r}"
    for section in range(1, 7):
        assert re.search(rf"^## {section}\. ", markdown, flags=re.M), (
            f"notebook 07 lacks the heading of section {section}"
        )
    for word in ("bench/", "bench folder", "results/", ".txt", "shared CPU", "FLOWLIB_FAST"):
        assert word not in markdown, f"notebook 07's prose mentions {word!r}"
    typed = [
        line
        for line in markdown.splitlines()
        if line.startswith("|") and re.search(r"\d+ of \d+|\d+/\d+", line)
    ]
    assert not typed, f"notebook 07 types failure counts into markdown: {typed[:2]}"
    assert "trainings ending non-finite" in code and "display(Markdown(" in code, (
        "notebook 07's failure table must be emitted by a code cell"
    )


EXERCISE = """def f(x):
    ### BEGIN SOLUTION hint: h
    return 2 * x
    ### END SOLUTION

{checks}
assert flowlib.config.REF != "patched", "a planted answer's change to flowlib outlived it"
"""

PLANTED = """- block: 1
  hidden: ex1
  mutants:
    plus_one: |
      return x + 1
    square: |
      return x * x
    negated: |
      return -2 * x
    halved: |
      return x / 2
  cheats:
    hard_coded: |
      return {1: 2, 3: 6}[x]
    patches_flowlib: |
      flowlib.config.REF = "patched"
      return {1: 2, 3: 6}[x]
  right:
    sum_of_two: |
      return x + x
"""

HIDDEN = """from otter.test_files import test_case

OK_FORMAT = False
name = "{name}"
points = 1


@test_case(points=1, hidden=True)
def doubles(f):
    {body}
"""


def test_the_exercise_plugin_fails_a_cell_whose_checks_miss_a_planted_answer(tmp_path):
    """tools/pytest_exercises.py under nbval: a wrong answer the public checks or the hidden
    tests let through, and a blank the checks swallow, each fail the exercise cell; strict
    checks pass, and so does the real solution of every case (nbval runs it). A planted answer
    that changes flowlib (``patches_flowlib``) is undone before the next variant and the real
    cell run."""
    strict = "assert f(1) == 2 and f(3) == 6 and f(-5) == -10"
    hidden_strict = "assert [f(v) for v in (0.5, 7, -11)] == [1.0, 14, -22]"
    cases = {  # name: (public checks, hidden test)
        "91_strict": (strict, hidden_strict),
        "92_weak": ("assert f(1) == 2", hidden_strict),  # `return x + 1` passes this
        "93_swallowing": ("try:\n    assert f(1) == 2\nexcept Exception:\n    pass", hidden_strict),
        "94_weak_hidden": (strict, "assert f(1) == 2 and f(3) == 6"),  # the hard-coded cheat passes
    }
    mutations, grading = tmp_path / "mutations", tmp_path / "grading"
    mutations.mkdir()
    for name, (checks, hidden) in cases.items():
        notebook = nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_code_cell("import math\nimport flowlib.config"),
                nbformat.v4.new_code_cell(EXERCISE.format(checks=checks)),
            ]
        )
        notebook.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, tmp_path / f"{name}.ipynb")
        (mutations / f"{name}.yaml").write_text(PLANTED)
        (grading / name).mkdir(parents=True)
        (grading / name / "ex1.py").write_text(HIDDEN.format(name=name, body=hidden))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tools.pytest_exercises",
         "--exercise-mutations", str(mutations), "--grading-tests", str(grading),
         "--nbval-lax", "--nbval-current-env", "-rA",
         *sorted(str(path) for path in tmp_path.glob("*.ipynb"))],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    outcomes = {
        name: outcome
        for outcome, name in re.findall(r"^(PASSED|FAILED) \S*?(9\d_\w+)\.ipynb::Cell 1", result.stdout, re.M)
    }
    tail = result.stdout[-3000:]
    assert outcomes == {
        "91_strict": "PASSED",
        "92_weak": "FAILED",
        "93_swallowing": "FAILED",
        "94_weak_hidden": "FAILED",
    }, tail
    assert (
        "block 1, mutants plus_one: the cell's checks should raise AssertionError, but it passed"
        in result.stdout
    )
    assert "block 1, blank: expected NotImplementedError, but it passed" in result.stdout
    assert "block 1, cheats hard_coded: a wrong answer passed the hidden tests" in result.stdout


def test_hidden_tests_run_against_the_kernels_names():
    """grading.hidden_runner_for_source: the student's function is taken by name from the
    namespace it runs in; a failing case is named; the runner leaves no name behind."""
    from tools import grading

    runner = grading.hidden_runner_for_source(
        HIDDEN.format(name="toy", body="assert f(3) == 6, 'f(3) is off'"), "toy"
    )
    namespace = {"f": lambda x: 2 * x}
    exec(compile(runner, "toy", "exec"), namespace)
    assert "__flowlib_hidden_tests" not in namespace
    namespace["f"] = lambda x: x + 4
    with pytest.raises(AssertionError, match=r"doubles: AssertionError: f\(3\) is off"):
        exec(compile(runner, "toy", "exec"), namespace)
    # Two failing cases: both are named, unless the runner stops at the first failure.
    two_cases = HIDDEN.format(name="toy", body="assert f(3) == 6, 'f(3) is off'") + (
        "\n\n@test_case(points=1, hidden=True)\ndef triples_never(f):\n    assert f(1) == 3, 'f(1) is off'\n"
    )
    with pytest.raises(AssertionError, match=r"doubles: .* \| triples_never: "):
        exec(compile(grading.hidden_runner_for_source(two_cases, "toy"), "toy", "exec"), namespace)
    with pytest.raises(AssertionError) as stopped:
        exec(
            compile(grading.hidden_runner_for_source(two_cases, "toy", first_failure=True), "toy", "exec"),
            namespace,
        )
    assert "doubles" in str(stopped.value) and "triples_never" not in str(stopped.value)


def test_the_kernels_stand_in_collects_what_otter_collects():
    """The plugin runs hidden tests without importing otter (tools/grading.py): for every hidden
    test file, otter's own ``test_case`` and the stand-in find the same cases, with the same
    points and parameters (both fill the parameters by name from the notebook's globals)."""
    pytest.importorskip(
        "otter", reason="the grading tool is in the dev extra (make test), not the pinned runs"
    )
    import inspect

    from otter.test_files import test_case

    from tools import grading

    files = sorted(grading.GRADING_DIR.glob("*/ex*.py"))
    assert len(files) >= 28, files
    for path in files:
        source = path.read_text()
        with_otter: dict = {}
        exec(compile(source, str(path), "exec"), with_otter)
        expected = {
            name: (case.points, case.hidden, list(inspect.signature(case.test_func).parameters))
            for name, case in with_otter.items()
            if isinstance(case, test_case)
        }
        assert expected, f"{path}: otter finds no test cases"
        probe = "import inspect\n__collected = {}\n" + grading.hidden_runner_for_source(
            source, str(path)
        ).replace(
            "    failures = []\n",
            "    globals()['__collected'].update({n: (c.points, c.hidden, list(inspect.signature("
            "c.test_func).parameters)) for n, c in namespace.items() if isinstance(c, test_case)})\n"
            "    return\n",
            1,
        )
        namespace: dict = {}
        exec(compile(probe, str(path), "exec"), namespace)
        assert namespace["__collected"] == expected, path

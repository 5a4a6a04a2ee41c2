"""Student copies of the notebooks: solutions become blanks, checks stay.

Each notebook ends with exercises. A solution is written once, in the notebook, between
marker lines::

    ### BEGIN SOLUTION hint: divide by exp(log_scale) after removing the shift
    return (y - shift) * np.exp(-log_scale)
    ### END SOLUTION

``build`` writes ``exercises/NN_name.ipynb`` for every ``notebooks/NN_name.ipynb``: each
marked block becomes ``raise NotImplementedError("<hint>")`` at the same indentation, the
checks after it stay visible, and all outputs are cleared.

``check`` fails if a student copy is missing or stale (regenerating would change it).

The checks are proved to work while nbval executes the notebooks (``make notebooks-test``
loads the pytest plugin in ``tools/pytest_exercises.py``): before each cell with solution
blocks, the same kernel runs, for each block, the student's blank (which must raise
``NotImplementedError``) and every planted answer listed in
``tests/exercise_mutations/NN_name.yaml``; then nbval runs the real solution, which must pass
the cell's checks and the exercise's hidden tests (``tests/grading/NN_name/exK.py``, see
``tools/grading.py``), and every other cell, which must run without error. Together with a
static check that no other cell uses a name a solution block defines (``cross_cell_uses``),
this proves what executing the student copy would (it stops exactly at its blanks), and more:
no check passes a wrong answer we thought of. The yaml file lists, in order of appearance,
one entry per solution block::

    - block: 1            # the 1st "### BEGIN SOLUTION" block of the notebook
      hidden: ex1         # its exercise's hidden tests: tests/grading/NN_name/ex1.py
      raises: ValueError  # optional: the error the checks raise for a mistake (AssertionError)
      mutants:            # honest mistakes: must fail the cell's checks and the hidden tests
        input_unchanged: |
          return y
      cheats:             # shortcuts (a global, a library call): must fail the hidden tests
        return_global: |
          return expected
      right:              # right answers written differently: must pass both
        numpy_loop: |
          return np.array([...])

Each body replaces the block's body, written unindented.

``verify`` (slow, kept for debugging) executes every student copy as a student would.

Usage: python tools/exercises.py {build,check,verify} [notebooks...]
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
from pathlib import Path
from typing import NamedTuple

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = ROOT / "notebooks"
TARGET_DIR = ROOT / "exercises"
MUTATIONS_DIR = ROOT / "tests" / "exercise_mutations"
BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION(?:\s+hint:\s*(?P<hint>.*))?$")
END = re.compile(r"^[ \t]*### END SOLUTION\s*$")
BLANK_MARK = "# TODO: your solution"
STUDENT_NOTE = (
    "> **Student copy.** Each exercise at the end has a blank that raises "
    "`NotImplementedError`: replace it with your solution. The checks below each "
    "blank tell you when you are right."
)


def blank_out(source: str, where: str) -> tuple[str, int]:
    """Replace every marked solution block in a cell's source; return (source, count)."""
    out, count, inside = [], 0, False
    for number, line in enumerate(source.splitlines(), 1):
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise ValueError(f"{where}, line {number}: BEGIN SOLUTION inside another solution")
            inside, count = True, count + 1
            hint = (begin.group("hint") or "write your solution here").strip()
            out.append(f"{begin.group('indent')}{BLANK_MARK}")
            out.append(f"{begin.group('indent')}raise NotImplementedError({hint!r})")
        elif END.match(line):
            if not inside:
                raise ValueError(f"{where}, line {number}: END SOLUTION without BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: BEGIN SOLUTION without END")
    return "\n".join(out), count


def student_copy(notebook: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The student version of a solution notebook (a new object; the input is unchanged)."""
    student = copy.deepcopy(notebook)
    blanks = 0
    for index, cell in enumerate(student.cells):
        if cell.cell_type == "code":
            cell.source, count = blank_out(cell.source, f"{name}, cell {index}")
            blanks += count
            cell.outputs, cell.execution_count = [], None
        cell.metadata = {key: value for key, value in cell.metadata.items() if key in ("tags",)}
        cell.pop("id", None)
    if blanks == 0:
        raise ValueError(f"{name} has no '### BEGIN SOLUTION' blocks: nothing to hand out")
    first = student.cells[0]
    first.source = re.sub(
        rf"(/blob/[\w.-]+/)notebooks/{re.escape(name)}", rf"\1exercises/{name}", first.source
    )
    first.source += "\n\n" + STUDENT_NOTE
    student.metadata.pop("widgets", None)
    student.nbformat_minor = max(student.nbformat_minor, 5)
    for cell in student.cells:  # stable ids, so regenerating changes nothing
        cell.id = f"cell-{student.cells.index(cell)}"
    return student


def sources(paths: list[str]) -> list[Path]:
    if paths:
        return [Path(p).resolve() for p in paths]
    return sorted(SOURCE_DIR.glob("[0-9][0-9]_*.ipynb"))


def render(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)
    return nbformat.writes(student_copy(notebook, path.name)) + "\n"


def build(paths: list[Path]) -> int:
    TARGET_DIR.mkdir(exist_ok=True)
    for path in paths:
        (TARGET_DIR / path.name).write_text(render(path))
        print(f"wrote exercises/{path.name}")
    return 0


def check(paths: list[Path]) -> int:
    stale = [
        p.name
        for p in paths
        if not (TARGET_DIR / p.name).is_file() or (TARGET_DIR / p.name).read_text() != render(p)
    ]
    extra = sorted({p.name for p in TARGET_DIR.glob("*.ipynb")} - {p.name for p in sources([])})
    for name in stale:
        print(f"exercises/{name} is missing or stale: run `make exercises`")
    for name in extra:
        print(f"exercises/{name} has no notebook in notebooks/: remove it")
    if not stale and not extra:
        print(f"{len(paths)} student copies are current")
    return 1 if stale or extra else 0


def verify(paths: list[Path]) -> int:
    from nbclient import NotebookClient

    sys.path.insert(0, str(ROOT))  # run as a script, tools/ is not importable as a package
    from tools import harness

    os.environ.update(harness.kernel_environment(fast=True))  # the kernels: harness installed, fast
    failures = 0
    for path in paths:
        student = nbformat.read(TARGET_DIR / path.name, as_version=4)
        NotebookClient(
            student,
            timeout=600,
            allow_errors=True,
            kernel_name="python3",
            resources={"metadata": {"path": str(SOURCE_DIR)}},
        ).execute()
        problems, blanks = [], 0
        for index, cell in enumerate(student.cells):
            if cell.cell_type != "code":
                continue
            errors = [o for o in cell.outputs if o.output_type == "error"]
            has_blank = BLANK_MARK in cell.source
            blanks += has_blank
            if has_blank and not any(e.ename == "NotImplementedError" for e in errors):
                problems.append(f"cell {index} has a blank but did not raise NotImplementedError")
            if not has_blank and errors:
                problems.append(f"cell {index} raised {errors[0].ename}: {errors[0].evalue}")
        status = "ok" if not problems else "FAILED"
        print(f"exercises/{path.name}: {blanks} blanks, {status}")
        for problem in problems:
            print(f"  - {problem}")
        failures += bool(problems)
    print(f"{len(paths) - failures} passed, {failures} failed")
    return 1 if failures else 0


# --------------------------------------------------------------------------- mutants
def solution_blocks(source: str) -> list[tuple[int, int, str, str]]:
    """The solution blocks of a cell: (first line, last line, indent, hint) per block, 0-based."""
    blocks, start, indent, hint = [], None, "", ""
    for number, line in enumerate(source.splitlines()):
        begin = BEGIN.match(line)
        if begin:
            start, indent = number, begin.group("indent")
            hint = (begin.group("hint") or "write your solution here").strip()
        elif END.match(line) and start is not None:
            blocks.append((start, number, indent, hint))
            start = None
    return blocks


def with_block_replaced(source: str, which: int, body: str) -> str:
    """``source`` with solution block ``which`` (of this cell) replaced by ``body``, re-indented."""
    start, end, indent, _ = solution_blocks(source)[which]
    lines = source.splitlines()
    new = [indent + line if line.strip() else "" for line in body.rstrip("\n").splitlines()]
    return "\n".join(lines[:start] + new + lines[end + 1 :])


def blank_body(hint: str) -> str:
    return f"{BLANK_MARK}\nraise NotImplementedError({hint!r})"


KINDS = {  # yaml key: (what each body must do, least count per block)
    "mutants": ("fail the public checks and the hidden tests", 4),
    "cheats": ("fail the hidden tests", 1),
    "right": ("pass the public checks and the hidden tests", 1),
}


def load_mutations(path: Path, directory: Path = MUTATIONS_DIR, grading: Path | None = None) -> list[dict]:
    """The planted answers of a notebook (``directory/NN_name.yaml``), validated against its
    solution blocks and its hidden tests: one entry per block, in order, each naming the file
    of hidden tests of its exercise (``hidden: exK`` for ``tests/grading/NN_name/exK.py``)."""
    import yaml

    from tools import grading as grading_tool

    grading = Path(grading) if grading is not None else grading_tool.GRADING_DIR
    notebook = nbformat.read(path, as_version=4)
    count = sum(len(solution_blocks(c.source)) for c in notebook.cells if c.cell_type == "code")
    where = Path(directory) / (Path(path).stem + ".yaml")
    if count and not where.is_file():
        shown = where.relative_to(ROOT) if where.is_relative_to(ROOT) else where
        raise ValueError(f"{Path(path).name} has {count} solution blocks but no {shown}")
    if not count:
        return []
    entries = yaml.safe_load(where.read_text()) or []
    if [entry.get("block") for entry in entries] != list(range(1, count + 1)):
        raise ValueError(
            f"{where.name}: needs one entry per solution block, block: 1 to {count} in order, "
            f"got {[entry.get('block') for entry in entries]}"
        )
    for entry in entries:
        label = f"{where.name}, block {entry['block']}"
        unknown = set(entry) - {"block", "hidden", "raises", *KINDS}
        if unknown:
            raise ValueError(f"{label}: unknown keys {sorted(unknown)}")
        for kind, (duty, least) in KINDS.items():
            bodies = entry.get(kind) or {}
            if len(bodies) < least or not all(isinstance(b, str) and b.strip() for b in bodies.values()):
                raise ValueError(f"{label}: needs at least {least} {kind} (each must {duty}), each a body")
        hidden = entry.get("hidden")
        if (
            not isinstance(hidden, str)
            or not grading_tool.hidden_tests_path(Path(path).stem, hidden, grading).is_file()
        ):
            raise ValueError(
                f"{label}: 'hidden: exK' must name a file tests/grading/{Path(path).stem}/exK.py"
            )
    return entries


def _bound(statements) -> set[str]:
    """Names the given top-level statements bind (functions, classes, assignments, imports, loops)."""
    import ast

    names: set[str] = set()
    for node in statements:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                names.add(sub.id)
    return names


def _free_loads(node) -> set[str]:
    """Names ``node`` reads that are not local to a function inside it."""
    import ast

    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        args = node.args
        local = {a.arg for a in args.args + args.kwonlyargs + args.posonlyargs}
        local |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        body = node.body if isinstance(node.body, list) else [node.body]
        local |= {
            n.id
            for b in body
            for n in ast.walk(b)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        }
        return set().union(*(_free_loads(b) for b in body)) - local
    if isinstance(node, ast.Name):
        return {node.id} if isinstance(node.ctx, ast.Load) else set()
    return set().union(set(), *(_free_loads(child) for child in ast.iter_child_nodes(node)))


def cross_cell_uses(notebook: nbformat.NotebookNode) -> list[str]:
    """Names an exercise cell binds after its first blank, used by a later cell.

    In the student copy a blank raises, so whatever its cell binds from there on (and a
    function completed by a blank) is missing: a later cell using it would fail for a
    reason that is not its own blank. Executing the solution notebook cannot see that;
    this static check can.
    """
    import ast

    problems = []
    code = [(i, c.source) for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    for position, (index, source) in enumerate(code):
        blocks = solution_blocks(source)
        if not blocks:
            continue
        first_line = blocks[0][0] + 1  # ast line numbers are 1-based
        tree = ast.parse(source)
        later = [node for node in tree.body if node.end_lineno >= first_line]
        missing = _bound(later)
        for other, other_source in code[position + 1 :]:
            other_tree = ast.parse(other_source)
            loaded = _free_loads(other_tree)
            for name in sorted((missing & loaded) - _bound(other_tree.body)):
                problems.append(f"cell {other} uses {name!r}, which cell {index} binds after a blank")
    return problems


class Variant(NamedTuple):
    """One version of an exercise cell that runs before the real one."""

    label: str  # "block 2, mutants sign_flip"
    source: str  # the cell with one block's body replaced
    kind: str  # blank, mutants, cheats or right
    error: str  # what the cell's own checks must raise ("" for nothing in particular)
    block: int  # the block's number in the notebook (the yaml's ``block``)


def planted_variants(source: str, entries: list[dict]) -> list[Variant]:
    """What runs in place of an exercise cell before the real one.

    ``entries`` are the yaml entries of this cell's solution blocks, in order. For each block
    the student's blank (kind ``blank``) must raise ``NotImplementedError``; each honest
    mistake (``mutants``) must make the cell's own checks raise ``AssertionError`` (or the error
    its entry names under ``raises:``) and fail the hidden tests; each shortcut (``cheats``)
    must fail the hidden tests, whatever the public checks say; each right answer written
    differently (``right``) must pass both.
    """
    variants = []
    for which, ((_, _, _, hint), entry) in enumerate(zip(solution_blocks(source), entries, strict=True)):
        wrong = entry.get("raises", "AssertionError")
        bodies = [("blank", "blank", blank_body(hint), "NotImplementedError")]
        bodies += [(name, "mutants", body, wrong) for name, body in entry["mutants"].items()]
        bodies += [(name, "cheats", body, "") for name, body in entry["cheats"].items()]
        bodies += [(name, "right", body, "") for name, body in entry["right"].items()]
        for name, kind, body, error in bodies:
            label = f"block {entry['block']}, " + (kind if kind == "blank" else f"{kind} {name}")
            variants.append(
                Variant(label, with_block_replaced(source, which, body), kind, error, entry["block"])
            )
    return variants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("build", "check", "verify"))
    parser.add_argument("notebooks", nargs="*", help="solution notebooks (default: notebooks/NN_*.ipynb)")
    args = parser.parse_args(argv)
    paths = sources(args.notebooks)
    return {"build": build, "check": check, "verify": verify}[args.command](paths)


if __name__ == "__main__":
    sys.exit(main())

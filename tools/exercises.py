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

``verify`` executes every student copy (in fast mode) and fails unless each copy stops
exactly at its blanks: every cell with a blank raises ``NotImplementedError``, and no other
cell raises anything. That proves every blank is really checked.

Usage: python tools/exercises.py {build,check,verify} [notebooks...]
"""
from __future__ import annotations

import argparse
import copy
import os
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = ROOT / "notebooks"
TARGET_DIR = ROOT / "exercises"
BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION(?:\s+hint:\s*(?P<hint>.*))?$")
END = re.compile(r"^[ \t]*### END SOLUTION\s*$")
BLANK_MARK = "# TODO: your solution"
STUDENT_NOTE = ("> **Student copy.** Each exercise at the end has a blank that raises "
                "`NotImplementedError`: replace it with your solution. The checks below each "
                "blank tell you when you are right.")


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
    first.source = re.sub(rf"(/blob/[\w.-]+/)notebooks/{re.escape(name)}", rf"\1exercises/{name}", first.source)
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
    stale = [p.name for p in paths
             if not (TARGET_DIR / p.name).is_file() or (TARGET_DIR / p.name).read_text() != render(p)]
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

    os.environ["FLOWLIB_FAST"] = "1"
    failures = 0
    for path in paths:
        student = nbformat.read(TARGET_DIR / path.name, as_version=4)
        NotebookClient(student, timeout=600, allow_errors=True, kernel_name="python3",
                       resources={"metadata": {"path": str(SOURCE_DIR)}}).execute()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("build", "check", "verify"))
    parser.add_argument("notebooks", nargs="*", help="solution notebooks (default: notebooks/NN_*.ipynb)")
    args = parser.parse_args(argv)
    paths = sources(args.notebooks)
    return {"build": build, "check": check, "verify": verify}[args.command](paths)


if __name__ == "__main__":
    sys.exit(main())

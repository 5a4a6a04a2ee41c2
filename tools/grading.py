"""The teacher's grading path: hidden tests in otter-grader's format, graded by ``otter run``.

Each exercise of a notebook has one file of hidden tests, ``tests/grading/NN_name/exK.py``,
in otter-grader's exception-based format: functions decorated with
``otter.test_files.test_case`` whose parameters are filled, by name, from the submitted
notebook's global names after it has run (the student's own definitions). They try more and
harder cases than the quick public checks under each exercise in the notebook, and they are
not in the student copy (``exercises/``).

Commands (``python tools/grading.py ...``):

``zip NN_name``
    Write ``build/grading/NN_name.zip``, otter's autograder for that notebook (``otter generate``).
``grade NN_name SUBMISSION.ipynb...``
    Grade submitted notebooks with ``otter run`` (no container: run it where the students'
    code may run), and print a table of scores per exercise; ``--csv FILE`` writes it too.
``sample NN_name``
    The end-to-end check ``make grade`` runs: a sample submission is made from the student
    copy (each exercise answered with a right answer in another style from
    ``tests/exercise_mutations/NN_name.yaml``, a planted wrong answer, or left blank, in turn),
    graded by ``otter run``, and every right answer must earn its exercise's full score and
    every other one less.

``hidden_runner`` gives the source that runs an exercise's hidden tests inside a live kernel
(``tools/pytest_exercises.py`` uses it to prove the hidden tests while nbval runs a notebook).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
GRADING_DIR = ROOT / "tests" / "grading"
BUILD_DIR = ROOT / "build" / "grading"
OTTER = Path(sys.executable).with_name("otter")


def hidden_tests_path(notebook_stem: str, exercise: str, directory: Path = GRADING_DIR) -> Path:
    """The file of hidden tests of one exercise: ``tests/grading/<notebook>/<exercise>.py``."""
    return Path(directory) / notebook_stem / f"{exercise}.py"


def hidden_runner(path: Path, *, first_failure: bool = False) -> str:
    """Source that runs the hidden tests in ``path`` against the kernel's global names.

    Executed in the kernel where the notebook runs, it calls every ``test_case`` of the file as
    otter does (parameters by name from the globals, missing names as None) and raises
    ``AssertionError`` naming each failing case; it leaves no name behind. With
    ``first_failure=True`` it stops at the first failing case: enough to show that a wrong
    answer fails, at a fraction of the cost.
    """
    return hidden_runner_for_source(Path(path).read_text(), str(path), first_failure=first_failure)


def hidden_runner_for_source(source: str, filename: str, *, first_failure: bool = False) -> str:
    """``hidden_runner`` for test source held in a string (``filename`` names it in errors).

    The kernel does not import otter: ``import otter`` costs about 3.5 s of CPU (nbformat and
    jsonschema), once per notebook. The file's ``from otter.test_files import test_case`` gets a
    stand-in with otter's calling convention (``otter/test_files/exception_test.py``,
    ``test_case.call_func``: each parameter by name from the globals, ``env`` the globals
    themselves, a missing name None). ``make grade`` grades with otter itself, and
    tests/test_notebooks.py checks that otter and the stand-in collect the same cases.
    """
    return f"""
def __flowlib_hidden_tests(source, filename):
    import builtins, inspect, types

    class test_case:  # otter.test_files.test_case, as otter calls it
        def __init__(self, name=None, points=None, hidden=False, success_message=None, failure_message=None):
            self.name, self.points, self.hidden = name, points, hidden

        def __call__(self, test_func):
            self.test_func = test_func
            return self

        def call_func(self, env):
            names = inspect.signature(self.test_func).parameters
            return self.test_func(**{{n: env if n == "env" else env.get(n) for n in names}})

    stand_in = types.ModuleType("otter.test_files")
    stand_in.test_case = test_case

    def importer(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "otter.test_files" and level == 0:
            return stand_in
        return builtins.__import__(name, globals, locals, fromlist, level)

    namespace = {{"__name__": "__hidden_tests__", "__builtins__": {{**vars(builtins), "__import__": importer}}}}
    exec(compile(source, filename, "exec"), namespace)
    failures = []
    for name, case in namespace.items():
        if isinstance(case, test_case):
            try:
                case.call_func(globals())
            except Exception as error:  # noqa: BLE001  (every failure counts, as in otter)
                failures.append(f"{{name}}: {{type(error).__name__}}: {{str(error)[:300]}}")
                if {first_failure!r}:
                    break
    if failures:
        raise AssertionError("hidden tests failed: " + " | ".join(failures))
try:
    __flowlib_hidden_tests({source!r}, {filename!r})
finally:
    del __flowlib_hidden_tests
"""


def exercises_of(notebook_stem: str, directory: Path = GRADING_DIR) -> list[str]:
    """The exercise names with hidden tests (``ex1``, ``ex2``, ...), in order."""
    files = sorted((Path(directory) / notebook_stem).glob("ex*.py"), key=lambda p: int(p.stem[2:]))
    return [path.stem for path in files]


def _test_names(notebook_stem: str) -> dict[str, str]:
    """Exercise file name -> the otter test ``name`` it declares."""
    names = {}
    for exercise in exercises_of(notebook_stem):
        namespace: dict = {}
        exec(compile(hidden_tests_path(notebook_stem, exercise).read_text(), exercise, "exec"), namespace)
        names[exercise] = namespace["name"]
    return names


def build_autograder(notebook_stem: str) -> Path:
    """``otter generate`` over the notebook's hidden tests; returns the zip's path."""
    tests = GRADING_DIR / notebook_stem
    if not exercises_of(notebook_stem):
        raise SystemExit(f"no hidden tests in {tests.relative_to(ROOT)}")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    out = BUILD_DIR / f"{notebook_stem}.zip"
    with tempfile.TemporaryDirectory() as work:  # otter picks up ./requirements.txt etc.: none here
        subprocess.run(
            [str(OTTER), "generate", "--no-requirements", "--no-environment", "--no-config",
             "-t", str(tests), "-o", str(out)],
            cwd=work, check=True, capture_output=True, text=True,
        )  # fmt: skip
    return out


def grade(notebook_stem: str, submissions: list[Path]) -> list[dict[str, float]]:
    """Scores per exercise (and ``total``) of each submission, by ``otter run``."""
    sys.path.insert(0, str(ROOT))  # run as a script, tools/ is not importable as a package
    from tools import harness

    autograder = build_autograder(notebook_stem)
    names = _test_names(notebook_stem)
    rows = []
    for submission in submissions:
        with tempfile.TemporaryDirectory() as out:
            run = subprocess.run(
                [str(OTTER), "run", "--no-logo", "-a", str(autograder), "-o", out, str(Path(submission).resolve())],
                capture_output=True, text=True, cwd=ROOT / "notebooks",
                env=harness.kernel_environment(),  # FLOWLIB_FAST=1 (make grade): shortened training
            )  # fmt: skip
            results = Path(out) / "results.json"
            if run.returncode != 0 or not results.is_file():
                raise SystemExit(
                    f"otter run failed on {submission}:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
                )
            tests = {test["name"]: test for test in json.loads(results.read_text())["tests"]}
        row = {"submission": str(submission)}
        for exercise, name in names.items():
            test = tests.get(name, {})
            row[exercise] = float(test.get("score") or 0.0)
            row[f"{exercise}_max"] = float(test.get("max_score") or 0.0)
        row["total"] = sum(row[exercise] for exercise in names)
        rows.append(row)
    return rows


def print_table(rows: list[dict], exercises: list[str]) -> None:
    header = ["submission", *exercises, "total"]
    print("  ".join(header))
    for row in rows:
        cells = [Path(row["submission"]).name]
        cells += [f"{row[e]:g}/{row[e + '_max']:g}" for e in exercises]
        cells.append(f"{row['total']:g}")
        print("  ".join(cells))


def sample_submission(notebook_stem: str, path: Path) -> dict[str, str]:
    """Write a sample submission made from the student copy; return exercise -> what it holds.

    Exercises take turns: a right answer in another style (the yaml's ``right``), a planted
    wrong answer (``mutants``, then ``cheats``), the blank left as handed out.
    """
    sys.path.insert(0, str(ROOT))
    from tools import exercises

    source = ROOT / "notebooks" / f"{notebook_stem}.ipynb"
    entries = exercises.load_mutations(source)
    student = nbformat.read(ROOT / "exercises" / f"{notebook_stem}.ipynb", as_version=4)
    answers: dict[str, str] = {}
    order = sorted({entry["hidden"] for entry in entries}, key=lambda e: int(e[2:]))
    for turn, exercise in enumerate(order):
        answers[exercise] = ("right", "mutant", "blank", "cheat")[turn % 4]
    block = 0
    for cell in student.cells:
        if cell.cell_type != "code" or exercises.BLANK_MARK not in cell.source:
            continue
        lines = cell.source.splitlines()
        out, index = [], 0
        while index < len(lines):
            line = lines[index]
            if line.strip() == exercises.BLANK_MARK:
                entry = entries[block]
                block += 1
                indent = line[: len(line) - len(line.lstrip())]
                kind = answers[entry["hidden"]]
                pool = {"right": entry["right"], "mutant": entry["mutants"], "cheat": entry["cheats"]}.get(
                    kind
                )
                if pool:
                    body = next(iter(pool.values()))
                    out += [indent + text if text.strip() else "" for text in body.rstrip("\n").splitlines()]
                    index += 2  # the marker and its raise NotImplementedError line
                    continue
            out.append(line)
            index += 1
        cell.source = "\n".join(out)
    nbformat.write(student, path)
    return answers


def sample(notebook_stem: str) -> int:
    """Grade a sample submission end to end; fail unless the scores tell right from wrong."""
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / f"{notebook_stem}_submission.ipynb"
        answers = sample_submission(notebook_stem, path)
        (row,) = grade(notebook_stem, [path])
    exercises = list(answers)
    print_table([row], exercises)
    problems = []
    for exercise, kind in answers.items():
        full = row[f"{exercise}_max"]
        if full <= 0:
            problems.append(f"{exercise}: otter found no points to give")
        elif kind == "right" and row[exercise] != full:
            problems.append(f"{exercise}: a right answer earned {row[exercise]:g} of {full:g}")
        elif kind != "right" and row[exercise] >= full:
            problems.append(f"{exercise}: a {kind} answer earned the full {full:g}")
    for exercise, kind in answers.items():
        print(f"  {exercise}: {kind}")
    for problem in problems:
        print(f"FAILED {problem}")
    print(f"{len(answers) - len(problems)} passed, {len(problems)} failed")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("zip").add_argument("notebook")
    grade_parser = sub.add_parser("grade")
    grade_parser.add_argument("notebook")
    grade_parser.add_argument("submissions", nargs="+", type=Path)
    grade_parser.add_argument("--csv", type=Path)
    sub.add_parser("sample").add_argument("notebook")
    args = parser.parse_args(argv)
    stem = Path(args.notebook).stem
    if not (ROOT / "notebooks" / f"{stem}.ipynb").is_file():
        parser.error(f"no notebook notebooks/{stem}.ipynb")
    if args.command == "zip":
        print(build_autograder(stem).relative_to(ROOT))
        return 0
    if args.command == "sample":
        return sample(stem)
    rows = grade(stem, args.submissions)
    print_table(rows, exercises_of(stem))
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    if not OTTER.exists() and shutil.which("otter") is None:
        sys.exit("otter-grader is not installed: pip install -e '.[dev]'")
    sys.exit(main())

"""The teacher's material end to end: the student copies are current, and a sample submission
graded by otter-grader earns full marks only where its answer is right (``make grade``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GRADE_NOTEBOOK = "02_change_of_variables"  # the Makefile's GRADE_NOTEBOOK


def test_student_copies_are_current(capsys):
    """exercises/ is what tools/exercises.py makes of notebooks/ today (``make exercises``)."""
    from tools import exercises

    assert exercises.check(exercises.sources([])) == 0, capsys.readouterr().out


def test_a_sample_submission_earns_only_what_its_right_answers_deserve():
    """tools/grading.py sample: one exercise right in another style, one honest mistake, one
    blank, one shortcut; otter grades it against the hidden tests, and only the right answer
    may earn full marks (the tool exits 1 otherwise)."""
    pytest.importorskip(
        "otter", reason="the grading tool is in the dev extra (make test), not the pinned runs"
    )
    from tools import harness

    result = subprocess.run(
        [sys.executable, "tools/grading.py", "sample", GRADE_NOTEBOOK],
        cwd=ROOT,
        env={**harness.kernel_environment(fast=True), "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout[-3000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
    assert " 0 failed" in result.stdout, output

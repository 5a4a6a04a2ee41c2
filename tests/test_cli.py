"""`python -m flowlib demo`: writes its figures, documents its flags, fails cleanly."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run(*args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "flowlib", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_demo_writes_its_figures(tmp_path):
    result = run("demo", "--fast", "--steps", "40", "--num-samples", "500", "--text", "Ok",
                 "--no-progress", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("layers.png", "density.png", "training.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    assert "entropy bound" in result.stdout and "gap" in result.stdout


def test_help_documents_every_flag():
    result = run("demo", "--help")
    assert result.returncode == 0
    for flag in ("--text", "--steps", "--batch-size", "--learning-rate", "--num-layers", "--hidden-units",
                 "--normalization", "--num-samples", "--seed", "--out", "--fast", "--no-progress"):
        assert flag in result.stdout


@pytest.mark.parametrize("args,message", [
    (("demo", "--text", "   "), "empty"),
    (("demo", "--steps", "0"), "positive"),
    (("demo", "--normalization", "groupnorm"), "invalid choice"),
])
def test_bad_input_is_a_clear_error_not_a_traceback(args, message):
    result = run(*args, "--fast", "--no-progress")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr

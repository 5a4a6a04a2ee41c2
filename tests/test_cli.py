"""`python -m flowlib demo`: writes its figures, documents its flags, fails cleanly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flowlib import __main__ as main_module


def run(*args, timeout=600, **env_changes):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg", **env_changes}
    env = {name: value for name, value in env.items() if value is not None}
    return subprocess.run(
        [sys.executable, "-m", "flowlib", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


# What TensorFlow prints on start-up on a machine without a GPU (see flowlib/__main__.py).
START_UP_NOISE = (
    "cuInit",
    "cuDNN",
    "cuFFT",
    "cuBLAS",
    "CUDA",
    "cuda",
    "computation placer",
    "absl",
    "oneDNN",
)


def test_demo_writes_its_figures_and_nothing_alarming(tmp_path):
    # As `make demo` runs it, but without the Makefile's TF_CPP_MIN_LOG_LEVEL: the demo itself
    # keeps a CPU-only start clean.
    result = run(
        "demo",
        "--fast",
        "--steps",
        "40",
        "--num-samples",
        "500",
        "--text",
        "Ok",
        "--no-progress",
        "--out",
        str(tmp_path),
        TF_CPP_MIN_LOG_LEVEL=None,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("layers.png", "density.png", "training.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    assert "entropy bound" in result.stdout and "gap" in result.stdout
    if not main_module.gpu_present():
        noise = [line for line in result.stderr.splitlines() if any(word in line for word in START_UP_NOISE)]
        assert noise == [], noise


FILTER_SCRIPT = """
import os, sys
from flowlib import __main__ as cli
cli.gpu_present = lambda: {gpu}
with cli.quiet_tensorflow_startup():
    os.write(2, b"E0000 00:00:1.2 6902 cuda_dnn.cc:8579] Unable to register cuDNN factory: already registered\\n")
    os.write(2, b"2026-11-29 E cuda_platform.cc:51] failed call to cuInit: CUDA error (303)\\n")
    os.write(2, b"E0000 tensorflow/core/kernels/real.cc:1] a real error from C++\\n")
    print("a real error from Python", file=sys.stderr)
os.write(2, b"after start-up: Unable to register cuDNN factory\\n")
with cli.quiet_tensorflow_startup():
    1 / 0
"""


@pytest.mark.parametrize("gpu", [False, True])
def test_the_start_up_filter_drops_only_known_noise(gpu):
    result = subprocess.run(
        [sys.executable, "-c", FILTER_SCRIPT.format(gpu=gpu)], capture_output=True, text=True, timeout=120
    )
    lines = result.stderr.splitlines()
    assert "E0000 tensorflow/core/kernels/real.cc:1] a real error from C++" in lines
    assert "a real error from Python" in lines
    assert "after start-up: Unable to register cuDNN factory" in lines  # only start-up is filtered
    assert "ZeroDivisionError: division by zero" in lines and result.returncode == 1  # exceptions pass
    assert not any("cuda_dnn.cc" in line for line in lines)
    # cuInit failing is noise without a GPU, and a real problem with one
    assert any("failed call to cuInit" in line for line in lines) == gpu


def test_help_documents_every_flag():
    result = run("demo", "--help")
    assert result.returncode == 0
    for flag in (
        "--text",
        "--steps",
        "--batch-size",
        "--learning-rate",
        "--num-layers",
        "--hidden-units",
        "--normalization",
        "--num-samples",
        "--seed",
        "--out",
        "--fast",
        "--no-progress",
    ):
        assert flag in result.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (("demo", "--text", "   "), "empty"),
        (("demo", "--steps", "0"), "positive"),
        (("demo", "--normalization", "groupnorm"), "invalid choice"),
    ],
)
def test_bad_input_is_a_clear_error_not_a_traceback(args, message):
    result = run(*args, "--fast", "--no-progress")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def in_process(capsys, monkeypatch, *args):
    """Run the CLI in this process (no TensorFlow start-up per case); fail if it trains."""
    from flowlib import train

    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("trained before refusing bad arguments"))
    with pytest.raises(SystemExit) as exit_:
        main_module.main(["demo", "--no-progress", *args])
    return exit_.value.code, capsys.readouterr()


BAD_ARGUMENTS = [
    (("--learning-rate", "inf"), "--learning-rate: must be a positive, finite number, got 'inf'"),
    (("--learning-rate", "nan"), "--learning-rate"),
    (("--learning-rate", "-1e-3"), "--learning-rate"),
    (("--seed", "-1"), "--seed: must be an integer from 0 to 2147483647, got '-1'"),
    (("--seed", "2147483648"), "--seed"),
    (("--seed", "1.5"), "--seed"),
    (("--seed", "3000000"), "seed must be at most"),  # layer seeds are seed * 1000 + index
    (("--steps", "1e3"), "--steps: must be a positive integer, got '1e3'"),
    (("--batch-size", "0"), "--batch-size"),
    (("--hidden-units", "64,64"), "--hidden-units"),
    (("--num-samples", "-5"), "--num-samples"),
    (("--text", "two\nlines"), "--text: text must be a single line"),
    (("--text", ""), "--text: text is empty"),
]


@pytest.mark.parametrize("args,message", BAD_ARGUMENTS)
def test_every_argument_is_checked_before_any_work(capsys, monkeypatch, tmp_path, args, message):
    code, output = in_process(capsys, monkeypatch, "--out", str(tmp_path / "figures"), *args)
    assert code == 2
    assert message in output.err
    assert len(output.err.strip().splitlines()) == 1 and "Traceback" not in output.err
    assert output.out == ""


def test_an_unwritable_out_is_refused_before_training(capsys, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for out, message in ((blocker, "exists and is not a folder"), (blocker / "sub", "cannot write to")):
        code, output = in_process(capsys, monkeypatch, "--out", str(out))
        assert code == 2 and "argument --out: " in output.err and message in output.err
        assert len(output.err.strip().splitlines()) == 1


def test_no_figures_when_the_guard_kept_no_step(capsys, tmp_path):
    out = tmp_path / "figures"
    code = main_module.main(
        [
            "demo",
            "--fast",
            "--layer",
            "affine",  # its weights overflow at once (a spline flow's may not: softmax bounds it)
            "--steps",
            "7",
            "--learning-rate",
            "1e30",
            "--num-layers",
            "2",
            "--hidden-units",
            "8",
            "--no-progress",
            "--text",
            "Ok",
            "--out",
            str(out),
        ]
    )
    output = capsys.readouterr()
    assert code == 1
    assert list(out.glob("*.png")) == []
    assert "kept 0 of 7 steps" in output.out + output.err
    assert "no figures were written" in output.err
    assert "wrote" not in output.out and "stopped at step" not in output.out

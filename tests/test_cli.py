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
        "--save",
        "--load",
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
    (
        ("--learning-rate", "1e39"),
        "--learning-rate: must be a positive number float32 can hold",
    ),  # inf in float32
    (
        ("--learning-rate", "1e-45"),
        "--learning-rate: must be a positive number float32 can hold",
    ),  # 0 in float32
    (("--seed", "-1"), "--seed: must be an integer from 0 to 2147483647, got '-1'"),
    (("--seed", "2147483648"), "--seed"),
    (("--seed", "1.5"), "--seed"),
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
    for out, message in ((blocker, "exists and is not a folder"), (blocker / "sub", "which is a file")):
        code, output = in_process(capsys, monkeypatch, "--out", str(out))
        assert code == 2 and "argument --out: " in output.err and message in output.err
        assert len(output.err.strip().splitlines()) == 1


def refused_before_tensorflow(capsys, monkeypatch, *args):
    """Like in_process, and fail if TensorFlow would have been started."""
    monkeypatch.setattr(
        main_module, "_start_tensorflow", lambda: pytest.fail("TensorFlow started before refusing")
    )
    code, output = in_process(capsys, monkeypatch, *args)
    assert code == 2 and len(output.err.strip().splitlines()) == 1 and "Traceback" not in output.err
    assert output.out == ""
    return output.err


def saved_checkpoint(folder, **metadata):
    """A checkpoint as --save writes it (a small affine flow) in ``folder``."""
    from dataclasses import asdict

    from flowlib import checkpoint, recipe

    chosen = recipe.AFFINE.replace(num_layers=2, hidden_units=(8, 8))
    metadata = {"recipe": asdict(chosen), "text": "Ok", "seed": 0, **metadata}
    checkpoint.save(chosen.build(seed=0), folder / "flow", metadata=metadata)
    return folder


def test_bad_output_and_checkpoint_paths_are_refused_before_tensorflow(capsys, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "flow.ckpt.json").write_text("my notes")
    kept = saved_checkpoint(tmp_path / "kept")
    out = ("--out", str(tmp_path / "figures"))
    cases = [
        (("--out", str(blocker)), "argument --out: "),
        (("--out", str(blocker / "sub")), "which is a file"),
        (("--out", "/proc/flowlib-test"), "argument --out: cannot write to"),  # unwritable, even for root
        ((*out, "--save", str(blocker)), "argument --save: "),
        ((*out, "--save", str(blocker / "sub")), "argument --save: "),
        ((*out, "--save", str(foreign)), "not the manifest of a flowlib checkpoint"),
        ((*out, "--load", str(tmp_path / "nothing")), "argument --load: no checkpoint at"),
        ((*out, "--load", str(foreign)), "argument --load: "),
        ((*out, "--load", str(kept), "--layer", "maf"), "argument --layer: the flow in"),
        ((*out, "--load", str(kept), "--hidden-units", "16"), "was saved with --hidden-units 8"),
        ((*out, "--load", str(kept), "--text", "Hi"), "was trained with --text 'Ok'"),
        ((*out, "--load", str(kept), "--seed", "3"), "argument --seed: "),
        ((*out, "--load", str(kept), "--steps", "5"), "argument --steps: not allowed with --load"),
        ((*out, "--load", str(kept), "--save", str(tmp_path / "x")), "not allowed with argument --load"),
        ((*out, "--text", "\u200b"), "argument --text: the picture has no dark pixels"),  # renders to nothing
    ]
    for args, message in cases:
        err = refused_before_tensorflow(capsys, monkeypatch, *args)
        assert message in err, (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "foreign", "kept"]  # nothing made


def test_a_refusal_removes_the_folders_its_checks_made(capsys, monkeypatch, tmp_path):
    err = refused_before_tensorflow(
        capsys,
        monkeypatch,
        "--out",
        str(tmp_path / "new" / "figures"),
        "--save",
        str(tmp_path / "kept"),
        "--text",
        "\u200b",
    )
    assert "--text" in err and list(tmp_path.iterdir()) == []


def test_a_picture_data_refuses_is_a_clean_error_before_tensorflow(capsys, monkeypatch, tmp_path):
    from flowlib import data

    def refuse(text, **kwargs):
        raise ValueError(f"the ink of {text!r} is its background (planted)")

    monkeypatch.setattr(data.PictureDistribution, "from_text", refuse)
    err = refused_before_tensorflow(capsys, monkeypatch, "--out", str(tmp_path), "--text", "Ok")
    assert "argument --text: the ink of 'Ok' is its background (planted)" in err
    monkeypatch.undo()
    err = refused_before_tensorflow(capsys, monkeypatch, "--out", str(tmp_path), "--text", "漢字")
    assert "argument --text: " in err and "cannot draw" in err and "漢" in err


NO_TENSORFLOW = """
import sys
from flowlib.__main__ import main
try:
    main(["demo", "--out", sys.argv[1]])
except SystemExit as exit_:
    print(exit_.code, "tensorflow" in sys.modules)
"""


def test_a_refusal_does_not_even_import_tensorflow(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, str(blocker)], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.split() == ["2", "False"], result.stderr
    assert "argument --out: " in result.stderr


class FakeHistory:
    """What train.fit returns, with the fields the demo reads."""

    def __init__(self, steps, rescues=0, stopped=False):
        self.loss = [3.0] * steps
        self.steps, self.stopped, self.seconds, self.learning_rate = steps, stopped, 0.1, 5.0
        self.validation_steps, self.validation_nll, self.times = [], [], []
        self.events = [f"rescue {i + 1}: loss became nan" for i in range(rescues)]

    @property
    def rescues(self):
        return len(self.events)


def fake_fit(scale, rescues):
    """A fit that multiplies every weight by ``scale`` (0.5: a little better; 50: ruined)."""

    def fit(flow, x, *, steps, **kwargs):
        from conftest import perturb

        perturb(flow, scale=scale, seed=1)
        return FakeHistory(steps, rescues)

    return fit


def demo_args(tmp_path, *more):
    return [
        "demo",
        "--fast",
        "--layer",
        "affine",
        "--num-layers",
        "2",
        "--hidden-units",
        "8",
        "--steps",
        "7",
        "--num-samples",
        "200",
        "--no-progress",
        "--text",
        "Ok",
        "--out",
        str(tmp_path / "figures"),
        *more,
    ]


def test_a_run_worse_than_its_start_is_an_error_and_is_not_saved(capsys, monkeypatch, tmp_path):
    from flowlib import train

    monkeypatch.setattr(train, "fit", fake_fit(scale=3.0, rescues=2))
    code = main_module.main(demo_args(tmp_path, "--save", str(tmp_path / "kept")))
    output = capsys.readouterr()
    assert code == 1
    assert "warning: training needed 2 rescues" in output.err
    assert "error: training made the flow worse, not better: held-out NLL" in output.err
    assert "error: the flow was not saved" in output.err
    assert not (tmp_path / "kept" / "flow.ckpt.json").exists()
    assert (tmp_path / "figures" / "density.png").stat().st_size > 0  # the figures show what went wrong


@pytest.mark.parametrize("layer", ["maf", "spline"])
def test_the_largest_documented_seed_runs_every_step(capsys, monkeypatch, tmp_path, layer):
    """--seed 2147483647 builds, trains, samples and scores (the test points' seed was seed + 1)."""
    from flowlib import train

    monkeypatch.setattr(train, "fit", fake_fit(scale=0.9, rescues=0))
    code = main_module.main(demo_args(tmp_path, "--layer", layer, "--seed", str(2**31 - 1)))
    output = capsys.readouterr()
    assert "held-out NLL" in output.out, output.err[-2000:]
    assert "Traceback" not in output.err and code in (0, 1)


def test_rescues_are_reported_even_when_the_run_recovers(capsys, monkeypatch):
    from types import SimpleNamespace

    history, better = FakeHistory(7, rescues=1), SimpleNamespace(nll=2.5, gap=0.3)
    lines, failed = main_module._verdict(history, 3.6, better)
    assert not failed and len(lines) == 1 and lines[0].startswith("warning: training needed 1 rescue:")
    lines, failed = main_module._verdict(FakeHistory(7), 3.6, better)
    assert not failed and lines == []
    for worse in (3.6, 40.0, float("nan"), float("inf")):
        lines, failed = main_module._verdict(FakeHistory(7), 3.6, SimpleNamespace(nll=worse, gap=1.0))
        assert failed and lines[-1].startswith("error: training made the flow worse")


def test_save_then_load_shows_the_same_flow_without_training(capsys, monkeypatch, tmp_path):
    from flowlib import train

    kept = tmp_path / "kept"
    assert main_module.main(demo_args(tmp_path, "--save", str(kept))) == 0  # really trains, 7 steps
    trained = capsys.readouterr().out
    assert f"saved the flow to {kept}" in trained
    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("trained although --load was given"))
    out = tmp_path / "shown"
    assert (
        main_module.main(["demo", "--fast", "--num-samples", "200", "--load", str(kept), "--out", str(out)])
        == 0
    )
    loaded = capsys.readouterr().out
    assert "(no training)" in loaded
    score = [line for line in trained.splitlines() if line.startswith("held-out NLL")]
    assert len(score) == 1 and score[0] in loaded.splitlines()  # the same flow, the same numbers
    assert sorted(p.name for p in out.iterdir()) == ["density.png", "layers.png"]


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


class _StopAtFit(Exception):
    pass


@pytest.mark.parametrize(
    "flags, expected", [((), main_module.DEMO_STEPS), (("--fast",), main_module.DEMO_STEPS_FAST)]
)
def test_only_the_fast_flag_shortens_the_demo_not_the_environment(monkeypatch, tmp_path, flags, expected):
    """--fast is the user's quick look; the test harness's FLOWLIB_FAST is not the CLI's business."""
    from flowlib import metrics, train

    monkeypatch.setenv("FLOWLIB_FAST", "1")
    asked = []

    def fit(flow, data, *, steps, **kwargs):
        asked.append((steps, len(data)))
        raise _StopAtFit

    monkeypatch.setattr(train, "fit", fit)
    monkeypatch.setattr(metrics, "nll", lambda flow, x: 0.0)  # no need to evaluate the untrained flow
    with pytest.raises(_StopAtFit):
        main_module.main(["demo", "--no-progress", "--text", "Ok", "--out", str(tmp_path / "out"), *flags])
    assert asked == [(expected, 20_000 if flags else 100_000)]

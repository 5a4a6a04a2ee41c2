"""The test harness's fast mode (tests/harness/fast_mode.py): the rule, the wrapping, the kernels.

The library trains what it is asked; under test, the harness's IPython start-up shortens every
trainer it lists. These tests check the rule, that the wrapper changes nothing but ``steps``,
that a trainer imported after the start-up is wrapped too, the CI sentinel, and, end to end,
that a kernel started with the harness runs a 4000-step fit as 200 steps and one started
without it runs all 4000.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HARNESS_FILE = ROOT / "tests" / "harness" / "fast_mode.py"


def load_harness():
    spec = importlib.util.spec_from_file_location("fast_mode_under_test", HARNESS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = load_harness()


@pytest.mark.parametrize("steps", [1, 2, 7, 10, 19, 20, 21, 100, 399, 400, 401, 600, 4000, 20_000])
def test_the_rule_keeps_about_5_percent_but_at_least_min_steps_20(steps):
    got = harness.shortened(steps)
    assert 1 <= got <= steps
    assert got >= min(steps, 20)
    if steps * 0.05 > 20:  # the 5% rule binds: the nearest integer to 5%
        assert abs(got - steps * 0.05) <= 0.5
    else:
        assert got == min(steps, 20)


def test_the_rule_on_the_documented_examples():
    assert [harness.shortened(s) for s in (4000, 600, 100, 10)] == [200, 30, 20, 10]


@pytest.mark.parametrize(
    "value,expected",
    [("", False), ("0", False), ("off", False), ("1", True), ("TRUE", True), (" yes ", True), ("on", True)],
)
def test_switch_values(value, expected):
    assert harness.enabled({"FLOWLIB_FAST": value}) is expected
    assert harness.enabled({}) is False


def test_switch_rejects_nonsense():
    with pytest.raises(ValueError, match="FLOWLIB_FAST='sometimes'"):
        harness.enabled({"FLOWLIB_FAST": "sometimes"})


def _trainer(flow, data, *, steps: int = 3000, seed: int = 0):
    """A stand-in trainer: returns what it was called with."""
    return {"flow": flow, "data": data, "steps": steps, "seed": seed}


def test_the_wrapper_shortens_steps_given_or_default_and_nothing_else():
    wrapped = harness.shortening(_trainer)
    assert wrapped.__name__ == "_trainer" and wrapped.__doc__ == _trainer.__doc__
    assert inspect.signature(wrapped) == inspect.signature(_trainer)
    assert wrapped("f", "d", steps=4000, seed=3) == {"flow": "f", "data": "d", "steps": 200, "seed": 3}
    assert wrapped("f", "d")["steps"] == harness.shortened(3000)
    assert wrapped("f", "d", steps=10)["steps"] == 10


@pytest.mark.parametrize("bad", [-5, 0, 2.5, "100", True, None])
def test_the_wrapper_passes_bad_steps_on_for_the_library_to_reject(bad):
    assert harness.shortening(_trainer)("f", "d", steps=bad)["steps"] is bad


def _raced(flow, data, *, steps: int = 3000, max_seconds: float | None = None):
    """A stand-in trainer with a wall-clock budget."""
    return {"steps": steps, "max_seconds": max_seconds}


def test_the_wrapper_shortens_a_time_budget_by_the_same_fraction_to_at_least_a_second():
    wrapped = harness.shortening(_raced)
    assert wrapped("f", "d", steps=4000, max_seconds=40.0) == {"steps": 200, "max_seconds": 2.0}
    assert wrapped("f", "d", max_seconds=10)["max_seconds"] == harness.MIN_SECONDS
    assert wrapped("f", "d", max_seconds=0.5)["max_seconds"] == 0.5  # never longer than asked
    assert wrapped("f", "d")["max_seconds"] is None  # no budget given, none invented
    assert wrapped("f", "d", max_seconds=-1)["max_seconds"] == -1  # the library rejects it


def test_the_wrapper_passes_a_bad_call_on_unchanged():
    with pytest.raises(TypeError, match="unexpected keyword argument 'stepz'"):
        harness.shortening(_trainer)("f", "d", stepz=4000)


def test_a_trainer_without_steps_cannot_be_listed():
    with pytest.raises(TypeError, match="no `steps` parameter"):
        harness.shortening(lambda flow: flow)


@pytest.fixture
def fake_trainer_module(tmp_path, monkeypatch):
    """A module ``harness_fake_trainers`` with a trainer, importable but not yet imported."""
    (tmp_path / "harness_fake_trainers.py").write_text(
        textwrap.dedent(
            """
            def train(flow, *, steps=3000):
                return steps

            def through_module(flow, *, steps=3000):  # a library function calling its own trainer
                import harness_fake_trainers

                return harness_fake_trainers.train(flow, steps=steps)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(harness, "TRAINERS", (("harness_fake_trainers", "train"),))
    monkeypatch.delitem(sys.modules, "harness_fake_trainers", raising=False)
    finders = list(sys.meta_path)
    import tensorflow as tf

    optimiser_options = tf.config.optimizer.get_experimental_options()
    yield "harness_fake_trainers"
    sys.meta_path[:] = finders
    sys.modules.pop("harness_fake_trainers", None)
    # installing turned TensorFlow's graph optimiser off in this process: back to how it was
    tf.config.optimizer.set_experimental_options(
        {"disable_meta_optimizer": optimiser_options.get("disable_meta_optimizer", False)}
    )


def _graph_optimiser_off() -> bool:
    import tensorflow as tf

    return bool(tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False))


def test_install_wraps_a_trainer_imported_later_for_every_spelling(fake_trainer_module):
    assert harness.install({"FLOWLIB_FAST": "1"}) == ["harness_fake_trainers.train"]
    assert fake_trainer_module not in sys.modules  # installing imports nothing
    import harness_fake_trainers
    from harness_fake_trainers import train

    assert train(None, steps=4000) == 200
    assert harness_fake_trainers.train(None, steps=4000) == 200
    assert harness_fake_trainers.through_module(None, steps=4000) == 200
    harness.install({"FLOWLIB_FAST": "1"})  # twice: wrapped once
    assert harness_fake_trainers.train(None, steps=4000) == 200


def test_install_wraps_a_trainer_already_imported(fake_trainer_module):
    import harness_fake_trainers

    assert not _graph_optimiser_off()
    harness.install({"FLOWLIB_FAST": "1"})
    assert harness_fake_trainers.train(None, steps=4000) == 200
    assert _graph_optimiser_off()


def test_off_changes_nothing(fake_trainer_module):
    assert harness.install({"FLOWLIB_FAST": "0"}) == []
    import harness_fake_trainers

    assert harness_fake_trainers.train(None, steps=4000) == 4000
    assert not _graph_optimiser_off()


def test_under_ci_without_the_switch_training_is_refused(fake_trainer_module):
    harness.install({"CI": "true", "FLOWLIB_FAST": "0"})
    import harness_fake_trainers

    with pytest.raises(RuntimeError, match="CI without FLOWLIB_FAST=1"):
        harness_fake_trainers.train(None, steps=4000)


@pytest.mark.parametrize("module_name, function_name", harness.TRAINERS)
def test_every_listed_trainer_exists_and_takes_steps(module_name, function_name):
    trainer = getattr(importlib.import_module(module_name), function_name)
    assert "steps" in inspect.signature(trainer).parameters


def test_a_nonsense_switch_refuses_training_with_the_value(fake_trainer_module):
    harness.install({"FLOWLIB_FAST": "sometimes"})
    import harness_fake_trainers

    with pytest.raises(RuntimeError, match="FLOWLIB_FAST='sometimes'"):
        harness_fake_trainers.train(None, steps=4000)


def test_the_colab_like_run_starts_the_same_file():
    colab = ROOT / "tests" / "colab" / "ipython" / "profile_default" / "startup" / "10_fast_mode.py"
    ours = harness.IPYTHONDIR / "profile_default" / "startup" / "00_fast_mode.py"
    assert colab.resolve() == ours.resolve()


def _steps_run_in_a_kernel(env: dict[str, str], *, fit: bool) -> tuple[int, ...]:
    """In a fresh kernel started with ``env``: the steps a 4000-step ``iterate.repeat`` ran,
    with ``fit=True`` those a 4000-step fit of a tiny flow ran (its History), and 1 if
    TensorFlow's graph optimiser was off, else 0."""
    import nbformat
    from nbclient import NotebookClient

    code = "from flowlib import iterate\nprint(len(iterate.repeat(lambda number: number, steps=4000)))\n"
    if fit:
        code += textwrap.dedent(
            """
            import numpy as np
            from flowlib import flows, train
            flow = flows.realnvp(num_layers=2, hidden_units=(4,), normalization="none", seed=0)
            x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
            history = train.fit(flow, x, steps=4000, batch_size=8, steps_per_call=200, progress=False)
            assert history.steps == len(history.loss)
            print(history.steps)
            """
        )
    # last: whether TensorFlow's graph optimiser is off (the harness's fast mode turns it off;
    # a kernel that never imported TensorFlow has it at TensorFlow's default, on)
    code += (
        "import sys\n"
        "tf = sys.modules.get('tensorflow')\n"
        "print(int(tf is not None and tf.config.optimizer.get_experimental_options()"
        ".get('disable_meta_optimizer', False)))\n"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    client = NotebookClient(notebook, timeout=300, kernel_name="python3")
    client.execute(env=env)
    text = "".join(o.get("text", "") for o in notebook.cells[0].outputs if o.output_type == "stream")
    return tuple(int(word) for word in text.split())


def test_a_kernel_with_the_harness_trains_200_of_4000_steps_and_one_without_4000(monkeypatch):
    """The fast mode, end to end in real kernels: shortened trainers and no graph optimiser
    under the harness; full length and TensorFlow's defaults without it."""
    import os

    monkeypatch.delenv("CI", raising=False)
    base = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    base.pop("IPYTHONDIR", None)
    assert _steps_run_in_a_kernel(harness.kernel_environment(base), fit=True) == (200, 200, 1)
    # Without the harness the switch alone does nothing (fit's own indifference to it is
    # tests/test_train.py's): the same trainer wrapper, iterate.repeat, runs in full.
    assert _steps_run_in_a_kernel({**base, "FLOWLIB_FAST": "1"}, fit=False) == (4000, 0)

"""Checkpoints by fault injection: a failed load leaves the flow bit-identical, a failed
save leaves the previous checkpoint loadable, and every failure is one clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import perturb

from flowlib import checkpoint, flows, metrics


def small(seed: int = 0, **kwargs):
    kwargs = {"num_layers": 2, "hidden_units": (8,), "normalization": "batchnorm", **kwargs}
    flow = flows.realnvp(seed=seed, **kwargs)
    perturb(flow, seed=seed + 100)  # not the identity, and different per seed
    return flow


def state(flow):
    """What must not change: log_prob on fixed points and every variable, bit for bit."""
    points = np.random.default_rng(0).uniform(-3, 3, (64, flows.event_dim(flow))).astype(np.float32)
    return metrics.log_prob(flow, points), [v.numpy().copy() for v in flow.variables]


def assert_same_state(flow, expected):
    log_prob, values = state(flow)
    np.testing.assert_array_equal(log_prob, expected[0])
    assert len(values) == len(expected[1])
    for a, b in zip(values, expected[1]):
        np.testing.assert_array_equal(a, b)


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------- loads across shapes
SHAPES = [
    pytest.param(dict(num_layers=12), dict(num_layers=13), id="12-into-13-couplings"),
    pytest.param(dict(num_layers=13), dict(num_layers=12), id="13-into-12-couplings"),
    pytest.param(dict(num_layers=12), dict(num_layers=8), id="12-into-8-couplings"),
    pytest.param(dict(normalization="none"), dict(normalization="batchnorm"), id="none-into-batchnorm"),
    pytest.param(dict(normalization="batchnorm"), dict(normalization="none"), id="batchnorm-into-none"),
    pytest.param(dict(normalization="actnorm"), dict(normalization="batchnorm"), id="actnorm-into-batchnorm"),
    pytest.param(dict(normalization="batchnorm"), dict(normalization="actnorm"), id="batchnorm-into-actnorm"),
    pytest.param(dict(normalization="none"), dict(normalization="actnorm"), id="none-into-actnorm"),
    pytest.param(dict(hidden_units=(64, 64)), dict(hidden_units=(64, 64, 64)), id="64x2-into-64x3"),
    pytest.param(dict(hidden_units=(64, 64, 64)), dict(hidden_units=(64, 64)), id="64x3-into-64x2"),
    pytest.param(dict(hidden_units=(64, 64)), dict(hidden_units=(32, 32)), id="64-into-32-wide"),
    pytest.param(dict(permutation="reverse", num_layers=1), dict(num_layers=1, dim=3), id="2d-into-3d"),
]


@pytest.mark.parametrize("saved,loaded", SHAPES)
def test_a_checkpoint_of_another_shape_is_refused_and_changes_nothing(tmp_path, saved, loaded):
    # Small networks where the width does not matter, to keep the test quick.
    defaults = {"num_layers": 4, "hidden_units": (8,), "normalization": "none"}
    source = small(seed=1, **{**defaults, **saved})
    path = checkpoint.save(source, tmp_path / "flow")
    saved_files = files(tmp_path)
    flow = small(seed=2, **{**defaults, **loaded})
    before = state(flow)
    with pytest.raises(checkpoint.CheckpointError, match="does not fit this flow") as error:
        checkpoint.load(flow, path)
    assert str(path) in str(error.value)
    assert_same_state(flow, before)
    assert files(tmp_path) == saved_files
    assert isinstance(error.value, ValueError)  # callers catching ValueError still do


def test_the_refusal_says_what_differs(tmp_path):
    path = checkpoint.save(small(num_layers=3), tmp_path / "flow")
    with pytest.raises(checkpoint.CheckpointError, match="not in this flow"):
        checkpoint.load(small(num_layers=2), path)
    with pytest.raises(checkpoint.CheckpointError, match="not in the checkpoint"):
        checkpoint.load(small(num_layers=4), path)
    with pytest.raises(checkpoint.CheckpointError, match=r"shape.*checkpoint \[8\]"):
        checkpoint.load(small(num_layers=3, hidden_units=(16,)), path)


def test_a_fitting_checkpoint_restores_every_bit(tmp_path):
    source, flow = small(seed=1), small(seed=2)
    assert not np.array_equal(state(flow)[0], state(source)[0])
    checkpoint.load(flow, checkpoint.save(source, tmp_path / "flow"))
    assert_same_state(flow, state(source))


def tf_files(path: Path) -> Path:
    """The folder holding TensorFlow's files of the checkpoint at ``path`` (named by its manifest)."""
    record = json.loads(checkpoint.manifest_path(path).read_text())
    return path.parent / record["folder"]


# ---------------------------------------------------------------------- other builds, same shapes
# Each pair has exactly the same variables (names and shapes): only the build record tells them apart.
BUILDS = [
    pytest.param(flows.maf, dict(), flows.iaf, dict(), "checkpoint MAF, this flow IAF", id="maf-into-iaf"),
    pytest.param(
        flows.spline_flow,
        dict(bound=4.0),
        flows.spline_flow,
        dict(bound=8.0),
        "bound: checkpoint 4.0",
        id="bound-4-into-8",
    ),
    pytest.param(
        flows.realnvp,
        dict(permutation="reverse", dim=3),
        flows.realnvp,
        dict(permutation="random", dim=3),
        "permutation: checkpoint [2, 1, 0]",
        id="reverse-into-random",
    ),
    pytest.param(
        flows.maf,
        dict(max_log_scale=2.0),
        flows.maf,
        dict(max_log_scale=None),
        "this flow None",
        id="bound-2-into-none",
    ),
]


@pytest.mark.parametrize("build_saved,saved,build_loaded,loaded,message", BUILDS)
def test_a_checkpoint_of_another_build_is_refused_even_with_the_same_variables(
    tmp_path, build_saved, saved, build_loaded, loaded, message
):
    common = dict(num_layers=3, hidden_units=(8,), normalization="none")
    source = build_saved(seed=1, **{**common, **saved})
    perturb(source, seed=5)
    path = checkpoint.save(source, tmp_path / "flow")
    flow = build_loaded(seed=1, **{**common, **loaded})
    # the premise: a load that looked at names and shapes only would accept it
    assert [(v.name, v.shape) for v in source.variables] == [(v.name, v.shape) for v in flow.variables]
    before = state(flow)
    with pytest.raises(checkpoint.CheckpointError, match="built differently") as error:
        checkpoint.load(flow, path)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert_same_state(flow, before)


def test_the_seed_of_the_initial_weights_does_not_matter(tmp_path):
    # seed draws initial weights, which a load replaces: only seeded constants count
    source = small(seed=1, permutation="reverse")
    flow = small(seed=7, permutation="reverse")
    checkpoint.load(flow, checkpoint.save(source, tmp_path / "flow"))
    assert_same_state(flow, state(source))


# ---------------------------------------------------------------------- damaged files
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "truncated index": ("flow.index", _truncate),
    "truncated data": ("flow.data-00000-of-00001", _truncate),
    "empty index": ("flow.index", lambda p: p.write_bytes(b"")),
    "empty data": ("flow.data-00000-of-00001", lambda p: p.write_bytes(b"")),
    "garbage index": ("flow.index", _garbage),
    "garbage data": ("flow.data-00000-of-00001", _garbage),
    "one byte of data flipped": ("flow.data-00000-of-00001", _flip_one_byte),
    "data missing": ("flow.data-00000-of-00001", lambda p: p.unlink()),
    "folder missing": ("", lambda p: shutil.rmtree(p)),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_is_one_clear_error_and_changes_nothing(tmp_path, damage):
    name, harm = DAMAGE[damage]
    path = checkpoint.save(small(seed=1), tmp_path / "flow")
    harm(tf_files(path) / name)
    flow = small(seed=2)
    before = state(flow)
    with pytest.raises(checkpoint.CheckpointError, match="cannot be read") as error:
        checkpoint.load(flow, path)
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    assert_same_state(flow, before)
    # load_or_train reports it too, and does not train over it
    calls = []
    with pytest.raises(checkpoint.CheckpointError, match="cannot be read"):
        checkpoint.load_or_train(flow, path, lambda: calls.append(1))
    assert calls == []
    assert_same_state(flow, before)


@pytest.mark.parametrize(
    "manifest,message",
    [
        ("my notes\n", "not the manifest of a flowlib checkpoint"),
        ('{"format": "flowlib checkpoint", "version": 99, "folder": "x"}', "another version"),
        ('{"format": "flowlib checkpoint", "version": 1, "folder": "../elsewhere"}', "not one of its own"),
    ],
)
def test_a_foreign_or_damaged_manifest_is_refused_by_load_and_save(tmp_path, manifest, message):
    path = tmp_path / "flow"
    checkpoint.manifest_path(path).write_text(manifest)
    before = files(tmp_path)
    with pytest.raises(checkpoint.CheckpointError, match=message):
        checkpoint.load(small(), path)
    with pytest.raises(ValueError, match=message):
        checkpoint.save(small(), path)
    with pytest.raises(ValueError, match=message):
        checkpoint.load_or_train(small(), path, lambda: pytest.fail("trained over a foreign file"))
    assert files(tmp_path) == before


def test_index_and_data_from_different_saves_are_refused(tmp_path):
    first = checkpoint.save(small(seed=1), tmp_path / "first" / "flow")
    second = checkpoint.save(small(seed=2), tmp_path / "second" / "flow")
    data = "flow.data-00000-of-00001"
    (tf_files(first) / data).write_bytes((tf_files(second) / data).read_bytes())
    flow = small(seed=3)
    before = state(flow)
    with pytest.raises(checkpoint.CheckpointError, match="different saves"):
        checkpoint.load(flow, first)
    assert_same_state(flow, before)


# ---------------------------------------------------------------------- the user's files
def test_a_save_touches_only_what_it_wrote(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    theirs = {
        "flow.data-notes.txt": b"my notes",
        "flow.data-2024.csv": b"a,b\n1,2\n",
        "flow.index/inside.txt": b"kept",
        "flow.ckpt-notes/inside.txt": b"kept too",
        "flow.ckpt-0123456789abcdef/mine.txt": b"looks like ours, is not",
        ".flow.other": b"hidden",
    }
    for name, content in theirs.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(content)
    source = small(seed=1)
    checkpoint.save(small(seed=4), run / "flow")
    checkpoint.save(source, run / "flow")  # over the first: removes only the first one's folder
    after = files(run)
    for name, content in theirs.items():
        assert after.pop(name) == content
    folder = tf_files(run / "flow").name
    assert sorted(after) == [f"{folder}/flow.data-00000-of-00001", f"{folder}/flow.index", "flow.ckpt.json"]
    flow = small(seed=3)
    checkpoint.load(flow, run / "flow")
    assert_same_state(flow, state(source))


def test_a_path_with_glob_characters_saves_and_loads(tmp_path):
    source = small(seed=1)
    for name in ("run[1]/flow", "run[1]/flow[a]", "a*b?/fl\\ow"):
        path = checkpoint.save(source, tmp_path / name)
        flow = small(seed=2)
        checkpoint.load(flow, path)
        assert_same_state(flow, state(source))


def test_a_save_into_an_unwritable_place_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="is a file"):
        checkpoint.save(small(), blocker / "flow")
    with pytest.raises(ValueError, match="is a file"):
        checkpoint.save(small(), blocker / "deeper" / "flow")
    with pytest.raises(ValueError, match="not a folder"):
        checkpoint.save(small(), tmp_path)
    (tmp_path / "flow.ckpt.json").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        checkpoint.save(small(), tmp_path / "flow")
    assert blocker.read_text() == "not a folder"


# ---------------------------------------------------------------------- interrupted saves
STEPS = [
    "staging folder created",
    "weights written",
    "checkpoint folder in place",
    "manifest written",
    "manifest replaced",
    "old checkpoint removed",
]


class Killed(BaseException):
    """Stands for kill -9: a BaseException, so save's clean-up (for errors) does not run.

    save has no ``finally`` or ``with`` around its steps, so what it leaves after this is
    what a killed process leaves (test_every_step_is_announced checks the steps are real).
    """


def kill_at(monkeypatch, step: str) -> list[str]:
    seen = []

    def hook(name):
        seen.append(name)
        if name == step:
            raise Killed(step)

    monkeypatch.setattr(checkpoint, "_step", hook)
    return seen


def test_every_step_is_announced(tmp_path, monkeypatch):
    seen = kill_at(monkeypatch, "never")
    checkpoint.save(small(), tmp_path / "flow")
    checkpoint.save(small(), tmp_path / "flow")
    assert seen == STEPS * 2


@pytest.mark.parametrize("first_save", [False, True])
@pytest.mark.parametrize("step", STEPS)
def test_a_save_killed_at_any_step_leaves_the_old_or_the_new_checkpoint(
    tmp_path, monkeypatch, step, first_save
):
    path = tmp_path / "flow"
    old, new = small(seed=1), small(seed=2)
    if not first_save:
        checkpoint.save(old, path)
    kill_at(monkeypatch, step)
    with pytest.raises(Killed):
        checkpoint.save(new, path)
    monkeypatch.undo()
    replaced = STEPS.index(step) >= STEPS.index("manifest replaced")
    # the next load finds a complete checkpoint: the new one once the manifest was
    # replaced, else the old one (or none, if there was none)
    flow = small(seed=3)
    if replaced or not first_save:
        checkpoint.load(flow, path)
        assert_same_state(flow, state(new if replaced else old))
    else:
        assert not checkpoint.exists(path)
    # ... and load_or_train (as a rerun of the killed program would) removes the leftovers
    trained = []
    loaded = checkpoint.load_or_train(small(seed=3), path, lambda: trained.append(1))
    assert loaded == (replaced or not first_save) and len(trained) == (not loaded)
    folder = tf_files(path).name
    assert sorted(files(tmp_path)) == [
        f"{folder}/flow.data-00000-of-00001",
        f"{folder}/flow.index",
        "flow.ckpt.json",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder, "flow.ckpt.json"]


def _fail(real, error):
    def failing(*args, **kwargs):
        raise error

    return failing


FAILURES = {
    "write": lambda mp: mp.setattr(
        tf.train.Checkpoint, "write", _fail(None, tf.errors.ResourceExhaustedError(None, None, "disk full"))
    ),
    "rename": lambda mp: mp.setattr(
        checkpoint.os, "rename", _fail(None, OSError(28, "No space left on device"))
    ),
    "replace": lambda mp: mp.setattr(checkpoint.os, "replace", _fail(None, OSError(5, "Input/output error"))),
    "fsync": lambda mp: mp.setattr(
        checkpoint.os, "fsync", _fail(None, OSError(28, "No space left on device"))
    ),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_save_failing_part_way_keeps_the_previous_checkpoint_and_cleans_up(tmp_path, monkeypatch, failure):
    old = small(seed=1)
    path = checkpoint.save(old, tmp_path / "flow")
    before_files = files(tmp_path)
    FAILURES[failure](monkeypatch)
    with pytest.raises(OSError, match="previous one, if any, is unchanged") as error:
        checkpoint.save(small(seed=2), path)
    monkeypatch.undo()
    assert "\n" not in str(error.value) and str(path) in str(error.value)
    assert files(tmp_path) == before_files  # bit-identical, and no temporary file or folder left
    assert len(list(tmp_path.iterdir())) == 2
    restored = small(seed=3)
    checkpoint.load(restored, path)
    assert_same_state(restored, state(old))


def test_a_save_over_a_checkpoint_replaces_it_and_leaves_nothing_else(tmp_path):
    path = checkpoint.save(small(seed=1), tmp_path / "flow")
    newer = small(seed=2)
    checkpoint.save(newer, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [tf_files(path).name, "flow.ckpt.json"]
    flow = small(seed=3)
    checkpoint.load(flow, path)
    assert_same_state(flow, state(newer))


def test_metadata_is_kept_and_read_without_the_weights(tmp_path):
    path = checkpoint.save(small(), tmp_path / "flow", metadata={"recipe": {"layer": "affine"}, "seed": 3})
    record = checkpoint.read_record(path)
    assert record["metadata"] == {"recipe": {"layer": "affine"}, "seed": 3}
    assert record["build"]["layers"][0]["type"].endswith("AffineCoupling")
    with pytest.raises(TypeError, match="metadata"):
        checkpoint.save(small(), path, metadata={"f": object()})
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        checkpoint.read_record(tmp_path / "other")


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(TypeError, match="flow"):
        checkpoint.save("not a flow", tmp_path / "flow")
    with pytest.raises(TypeError, match="path"):
        checkpoint.load(small(), 42)
    with pytest.raises(TypeError, match="train"):
        checkpoint.load_or_train(small(), tmp_path / "flow", train="fit")
    with pytest.raises(TypeError, match="metadata"):
        checkpoint.save(small(), tmp_path / "flow", metadata=[1])
    assert list(tmp_path.iterdir()) == []

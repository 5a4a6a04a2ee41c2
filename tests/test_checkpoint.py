"""Checkpoints by fault injection: a failed load leaves the flow bit-identical, a failed
save leaves the previous checkpoint loadable, and every failure is one clear error."""

from __future__ import annotations

import os
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
    "truncated index": (".index", _truncate),
    "truncated data": (".data-00000-of-00001", _truncate),
    "empty index": (".index", lambda p: p.write_bytes(b"")),
    "empty data": (".data-00000-of-00001", lambda p: p.write_bytes(b"")),
    "garbage index": (".index", _garbage),
    "garbage data": (".data-00000-of-00001", _garbage),
    "one byte of data flipped": (".data-00000-of-00001", _flip_one_byte),
    "data missing": (".data-00000-of-00001", lambda p: p.unlink()),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_is_one_clear_error_and_changes_nothing(tmp_path, damage):
    suffix, harm = DAMAGE[damage]
    path = checkpoint.save(small(seed=1), tmp_path / "flow")
    harm(Path(str(path) + suffix))
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


def test_index_and_data_from_different_saves_are_refused(tmp_path):
    first = checkpoint.save(small(seed=1), tmp_path / "first" / "flow")
    second = checkpoint.save(small(seed=2), tmp_path / "second" / "flow")
    data = ".data-00000-of-00001"
    Path(str(first) + data).write_bytes(Path(str(second) + data).read_bytes())
    flow = small(seed=3)
    before = state(flow)
    with pytest.raises(checkpoint.CheckpointError, match="different saves"):
        checkpoint.load(flow, first)
    assert_same_state(flow, before)


# ---------------------------------------------------------------------- atomic saves
def _failing_on_call(real, failing_call: int):
    calls = []

    def replace(*args, **kwargs):
        calls.append(args)
        if len(calls) == failing_call:
            raise OSError(28, "No space left on device (injected)")
        return real(*args, **kwargs)

    return replace, calls


# os.replace calls of a save over an existing checkpoint: old data aside, old index aside,
# new data in place, new index in place.
@pytest.mark.parametrize("failing_call", [1, 2, 3, 4])
def test_a_save_failing_part_way_keeps_the_previous_checkpoint(tmp_path, monkeypatch, failing_call):
    old = small(seed=1)
    path = checkpoint.save(old, tmp_path / "flow")
    before_files = files(tmp_path)
    replace, calls = _failing_on_call(os.replace, failing_call)
    monkeypatch.setattr(checkpoint.os, "replace", replace)
    with pytest.raises(OSError, match="previous one, if any, is unchanged"):
        checkpoint.save(small(seed=2), path)
    monkeypatch.undo()
    assert len(calls) >= failing_call
    assert files(tmp_path) == before_files  # bit-identical, and no temporary folder left
    restored = small(seed=3)
    checkpoint.load(restored, path)
    assert_same_state(restored, state(old))


def test_a_save_failing_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    old = small(seed=1)
    path = checkpoint.save(old, tmp_path / "flow")
    before_files = files(tmp_path)
    real_write = tf.train.Checkpoint.write

    def write_then_fail(self, prefix, **kwargs):
        real_write(self, prefix, **kwargs)  # files half there, as when the disk fills up
        raise tf.errors.ResourceExhaustedError(None, None, "disk full (injected)")

    monkeypatch.setattr(tf.train.Checkpoint, "write", write_then_fail)
    with pytest.raises(OSError, match="cannot save the checkpoint"):
        checkpoint.save(small(seed=2), path)
    monkeypatch.undo()
    assert files(tmp_path) == before_files
    restored = small(seed=3)
    checkpoint.load(restored, path)
    assert_same_state(restored, state(old))


def test_a_save_into_an_unwritable_place_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="cannot save the checkpoint"):
        checkpoint.save(small(), blocker / "flow")
    with pytest.raises(ValueError, match="not a folder"):
        checkpoint.save(small(), tmp_path)


def test_a_save_over_a_checkpoint_replaces_it_and_leaves_nothing_else(tmp_path):
    path = checkpoint.save(small(seed=1), tmp_path / "flow")
    newer = small(seed=2)
    checkpoint.save(newer, path)
    assert sorted(files(tmp_path)) == ["flow.data-00000-of-00001", "flow.index"]
    flow = small(seed=3)
    checkpoint.load(flow, path)
    assert_same_state(flow, state(newer))


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(TypeError, match="flow"):
        checkpoint.save("not a flow", tmp_path / "flow")
    with pytest.raises(TypeError, match="path"):
        checkpoint.load(small(), 42)
    with pytest.raises(TypeError, match="train"):
        checkpoint.load_or_train(small(), tmp_path / "flow", train="fit")

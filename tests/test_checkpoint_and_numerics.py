"""Save/restore loses nothing; log_prob and sampling stay finite far from the data."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import perturb

from flowlib import checkpoint, flows, metrics, train


@pytest.mark.parametrize("normalization", ["batchnorm", "actnorm"])
def test_restored_flow_is_identical(tmp_path, word, normalization):
    data = word.sample(4000, seed=0)
    flow = flows.realnvp(num_layers=4, hidden_units=(16, 16), normalization=normalization, seed=1)
    train.fit(flow, data, steps=100, batch_size=256, progress=False)
    if normalization == "batchnorm":
        moving = [layer for layer in flows.layers(flow) if hasattr(layer, "moving_mean")][
            0
        ].moving_mean.numpy()
        assert np.abs(moving).max() > 1e-3, "moving averages never moved: the test would be vacuous"
    path = checkpoint.save(flow, tmp_path / "ckpt" / "flow")
    other = flows.realnvp(num_layers=4, hidden_units=(16, 16), normalization=normalization, seed=99)
    points = word.sample(500, seed=7)
    assert not np.allclose(metrics.log_prob(other, points), metrics.log_prob(flow, points))
    checkpoint.load(other, path)
    np.testing.assert_array_equal(metrics.log_prob(other, points), metrics.log_prob(flow, points))
    np.testing.assert_array_equal(
        other.sample(300, seed=(1, 2)).numpy(), flow.sample(300, seed=(1, 2)).numpy()
    )
    for a, b in zip(flow.variables, other.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_load_reports_missing_and_mismatched_checkpoints(tmp_path):
    flow = flows.realnvp(num_layers=2, hidden_units=(8,))
    with pytest.raises(FileNotFoundError):
        checkpoint.load(flow, tmp_path / "nothing")
    path = checkpoint.save(flow, tmp_path / "small")
    with pytest.raises(ValueError, match="does not fit"):
        checkpoint.load(flows.realnvp(num_layers=2, hidden_units=(16,)), path)


def test_load_or_train(tmp_path):
    calls = []
    flow = flows.realnvp(num_layers=2, hidden_units=(8,), normalization="none")
    perturb(flow)
    assert checkpoint.load_or_train(flow, tmp_path / "f", lambda: calls.append(1)) is False
    again = flows.realnvp(num_layers=2, hidden_units=(8,), normalization="none")
    assert checkpoint.load_or_train(again, tmp_path / "f", lambda: calls.append(1)) is True
    assert calls == [1]
    np.testing.assert_array_equal(again.variables[0].numpy(), flow.variables[0].numpy())


@pytest.mark.parametrize("normalization", ["batchnorm", "actnorm", "none"])
def test_log_prob_far_from_the_data_is_never_nan(normalization):
    flow = flows.realnvp(num_layers=8, hidden_units=(32, 32), normalization=normalization)
    perturb(flow, scale=0.3, seed=3)
    radii = np.array([1.0, 10.0, 100.0, 1000.0])
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    far = (radii[:, None, None] * np.stack([np.cos(angles), np.sin(angles)], -1)).reshape(-1, 2)
    values = metrics.log_prob(flow, far.astype(np.float32))
    assert not np.any(np.isnan(values))
    assert np.all(np.isfinite(values) | (values == -np.inf))
    assert np.all(values[-16:] < values[:16].min())  # far points are less likely


def test_a_million_samples_stay_finite():
    flow = flows.realnvp(num_layers=8, hidden_units=(16, 16), normalization="batchnorm")
    perturb(flow, scale=0.3, seed=4)
    samples = flow.sample(1_000_000, seed=(0, 1)).numpy()
    assert samples.shape == (1_000_000, 2) and np.all(np.isfinite(samples))


@pytest.mark.parametrize(
    "bad,error",
    [
        (np.zeros((4, 3)), ValueError),
        (np.array([[np.inf, 0.0]]), ValueError),
        (np.zeros(4), ValueError),
    ],
)
def test_metrics_reject_bad_points(bad, error):
    flow = flows.realnvp(num_layers=2, hidden_units=(8,))
    with pytest.raises(error):
        metrics.log_prob(flow, bad)


def test_metrics_reject_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        metrics.log_prob(flows.realnvp(num_layers=2, hidden_units=(8,)), np.zeros((4, 2)), batch_size=0)


def test_evaluate_gap_is_nll_minus_entropy(word):
    flow = flows.realnvp(num_layers=2, hidden_units=(8,))
    points = word.sample(2000, seed=1)
    result = metrics.evaluate(flow, word, points)
    assert result.gap == pytest.approx(result.nll - word.entropy())
    assert result.nll == pytest.approx(metrics.nll(flow, points))
    assert result.gap > 0 and 0 < result.standard_error < 0.1
    assert "gap" in str(result)


def test_evaluate_in_training_mode_uses_evaluation_mode(word):
    flow = flows.realnvp(num_layers=2, hidden_units=(8,), normalization="batchnorm")
    points = word.sample(2000, seed=1)
    expected = metrics.nll(flow, points)
    flows.set_training(flow, True)
    assert metrics.nll(flow, points) == pytest.approx(expected)
    assert flows.is_training(flow)  # mode restored
    flows.set_training(flow, False)

"""Hidden tests for notebook 06, exercise 1: mean Euclidean move per layer, on made-up stages of other sizes and dimensions."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "06_ex1"
points = 2


def _stages(n, d, num_layers, seed):
    rng = np.random.default_rng(seed)
    points = rng.normal(loc=rng.uniform(-5, 5, d), scale=rng.uniform(0.1, 3, d), size=(n, d))
    stages, expected = [("base", points.astype(np.float32))], []
    for k in range(num_layers):
        length = rng.exponential(scale=1.0 + k, size=n)
        direction = rng.normal(size=(n, d))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        points = points + length[:, None] * direction
        stages.append((f"stage {k}", points.astype(np.float32)))
        expected.append(length.mean())
    return stages, np.array(expected)


@test_case(points=1, hidden=True)
def other_dimensions_and_depths(mean_displacement):
    for n, d, num_layers, seed in [(1, 2, 4, 11), (64, 4, 10, 12), (500, 5, 2, 13), (3, 1, 6, 14)]:
        stages, expected = _stages(n, d, num_layers, seed)
        answer = np.asarray(mean_displacement(stages), dtype=np.float64)
        assert answer.shape == expected.shape, (
            f"{n} points in {d}-D, {num_layers} layers: shape {answer.shape}"
        )
        np.testing.assert_allclose(answer, expected, rtol=1e-4, atol=1e-5, err_msg=f"{n} points in {d}-D")


@test_case(points=1, hidden=True)
def a_layer_that_does_not_move_and_one_layer(mean_displacement):
    stages, expected = _stages(40, 2, 1, 21)
    stages = [stages[0], ("identity", stages[0][1].copy()), ("moved", stages[1][1])]
    answer = np.asarray(mean_displacement(stages), dtype=np.float64)
    np.testing.assert_allclose(answer, [0.0, expected[0]], rtol=1e-4, atol=1e-6)

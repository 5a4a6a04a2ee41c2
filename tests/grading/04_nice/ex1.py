"""Hidden tests for notebook 04, exercise 1: insert_swaps on longer and odder stacks, without touching its input."""

import numpy as np
import tensorflow_probability as tfp
from otter.test_files import test_case

from flowlib import bijectors

tfb = tfp.bijectors

OK_FORMAT = False
name = "04_ex1"
points = 3


def _coupling(i):
    return bijectors.AdditiveCoupling(bijectors.half_mask(2), hidden_units=(3,), seed=100 + i, name=f"h{i}")


def _check(insert_swaps, layers):
    before = list(layers)
    got = list(insert_swaps(layers))
    assert len(layers) == len(before) and all(a is b for a, b in zip(layers, before)), (
        "the input list was changed"
    )
    probe = np.array([[0.25, -4.0]], np.float32)
    expected_swaps = [
        i
        for i, (a, b) in enumerate(zip(layers, layers[1:]))
        if isinstance(a, bijectors.AdditiveCoupling) and isinstance(b, bijectors.AdditiveCoupling)
    ]
    assert len(got) == len(layers) + len(expected_swaps), (
        f"{len(got)} layers returned for {len(layers)} given"
    )
    position = 0
    for i, layer in enumerate(layers):
        assert got[position] is layer, f"layer {i} is not where it belongs"
        position += 1
        if i in expected_swaps:
            np.testing.assert_array_equal(got[position].forward(probe).numpy(), probe[:, ::-1])
            position += 1


@test_case(points=1, hidden=True)
def long_mixed_stacks(insert_swaps):
    c = [_coupling(i) for i in range(8)]
    scale, shift = tfb.Scale(0.5), tfb.Shift([1.0, -2.0])
    _check(insert_swaps, [c[0], c[1], scale, c[2], c[3], c[4], shift])
    _check(insert_swaps, [shift, scale, c[5], c[6], c[7]])


@test_case(points=1, hidden=True)
def no_couplings_or_alternating(insert_swaps):
    c = [_coupling(i) for i in range(10, 14)]
    _check(insert_swaps, [tfb.Scale(2.0), tfb.Shift([0.0, 1.0])])
    _check(insert_swaps, [c[0], tfb.Scale(2.0), c[1], tfb.Scale(3.0), c[2], c[3]])

"""Hidden tests for notebook 08, exercise 2: made_masks_by_hand on new orders, degrees and depths."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "08_ex2"
points = 3

CASES = [(2, (1,)), (2, (3, 5)), (6, (13, 2, 8)), (7, (20,)), (10, (17, 9, 12, 11)), (3, (4, 4))]


def _refuse(*args, **kwargs):
    raise AssertionError("the masks are the exercise: build them from the degrees, not with TFP's MADE")


def _masks(made_masks_by_hand, order, hidden):
    """The answer's masks, computed while TFP's private mask builders (which take degrees and
    return exactly these masks, tensorflow_probability/python/bijectors/masked_autoregressive.py)
    refuse to run."""
    from unittest import mock

    from tensorflow_probability.python.bijectors import masked_autoregressive as tfp_made

    with (
        mock.patch.object(tfp_made, "_create_masks", _refuse),
        mock.patch.object(tfp_made, "_make_dense_autoregressive_masks", _refuse),
    ):
        masks = made_masks_by_hand(order.copy(), [h.copy() for h in hidden])
    return [np.asarray(m, dtype=np.float64) for m in masks]


@test_case(points=2, hidden=True)
def masks_follow_the_rules(made_masks_by_hand):
    for seed, (dim, widths) in enumerate(CASES):
        rng = np.random.default_rng(1505 + seed)
        for order in (rng.permutation(dim) + 1, np.arange(1, dim + 1), np.arange(dim, 0, -1)):
            hidden = [rng.integers(1, dim, size=units) for units in widths]
            masks = _masks(made_masks_by_hand, order, hidden)
            sizes = (dim, *widths, dim)
            assert [m.shape for m in masks] == list(zip(sizes[:-1], sizes[1:])), (
                f"D = {dim}, hidden {widths}: wrong mask shapes {[m.shape for m in masks]}"
            )
            degrees_in, degrees_out = [order, *hidden], [*hidden, order]
            for layer, (mask, d_in, d_out) in enumerate(zip(masks, degrees_in, degrees_out), start=1):
                strict = layer == len(masks)
                allowed = (d_out[None, :] > d_in[:, None]) if strict else (d_out[None, :] >= d_in[:, None])
                assert np.array_equal(mask != 0, allowed), (
                    f"D = {dim}, order {order.tolist()}: weight matrix {layer} is wrong"
                )
                assert np.all((mask == 0) | (mask == 1)), "masks hold 0 and 1 only"


@test_case(points=1, hidden=True)
def connectivity_is_autoregressive_in_the_given_order(made_masks_by_hand):
    rng = np.random.default_rng(7)
    for dim in (3, 5, 8):
        order = rng.permutation(dim) + 1
        hidden = [np.arange(units) % (dim - 1) + 1 for units in (2 * dim, 3 * dim)]  # every degree present
        paths = np.eye(dim)
        for mask in _masks(made_masks_by_hand, order, hidden):
            paths = (paths @ (mask != 0)) > 0
        assert np.array_equal(paths, order[None, :] > order[:, None]), (
            f"D = {dim}: output i must be reachable from exactly the inputs of lower degree"
        )

"""Run a hand-written training step a number of times: the trainer for loops a notebook writes.

:func:`flowlib.train.fit` trains a flow; some experiments train something else, e.g. notebook
07's forty copies of one stack, side by side, with a step of their own. :func:`repeat` runs such
a step ``steps`` times and returns what each call returned, so the caller learns how many steps
ran from the result (``len(...)``) rather than assuming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flowlib import validation

T = TypeVar("T")


def repeat(step: Callable[[int], T], *, steps: int) -> list[T]:
    """Call ``step(1)``, ``step(2)``, ..., ``step(steps)`` in order; return their results.

    Args:
        step: one training step; it gets the step number, counted from 1 (e.g. to seed its
            batch), and returns what should be kept of it (e.g. the losses, shape ``[copies]``).
        steps: how many steps to run, a positive integer.

    Returns:
        the ``steps`` results in order: ``np.array(repeat(...))`` stacks per-step losses into
        ``[steps, ...]``.
    """
    if step is None:
        raise TypeError("step must be callable, got None")
    validation.callable_or_none(step, "step")
    steps = validation.positive_int(steps, "steps")
    return [step(number) for number in range(1, steps + 1)]

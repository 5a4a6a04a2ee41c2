"""flowlib.iterate.repeat: the trainer for a notebook's own step (it runs what it is asked)."""

from __future__ import annotations

import pytest

from flowlib import iterate


def test_repeat_calls_the_step_with_its_number_in_order_and_keeps_every_result(monkeypatch):
    monkeypatch.setenv("FLOWLIB_FAST", "1")  # the test harness's switch: the library ignores it
    calls = []

    def step(number):
        calls.append(number)
        return number * number

    results = iterate.repeat(step, steps=37)
    assert calls == list(range(1, 38))
    assert results == [n * n for n in range(1, 38)]


@pytest.mark.parametrize("steps", [0, -3, 2.5, "10", True, None])
def test_repeat_rejects_a_bad_number_of_steps_before_any_step(steps):
    calls = []
    with pytest.raises((TypeError, ValueError), match="steps"):
        iterate.repeat(calls.append, steps=steps)
    assert calls == []


@pytest.mark.parametrize("step", [None, 3, "step"])
def test_repeat_rejects_a_step_that_is_not_callable(step):
    with pytest.raises(TypeError, match="step must be callable"):
        iterate.repeat(step, steps=3)

"""Shared fixtures. Tests build small flows and perturb their weights so that they are
not the identity (a fresh flow is, by design), which would make most checks vacuous."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


def perturb(flow, *, scale: float = 0.3, seed: int = 0) -> None:
    """Give every variable of ``flow`` a random, non-trivial value (moving variances > 0)."""
    import tensorflow as tf

    from flowlib import flows

    rng = np.random.default_rng(seed)
    for variable in flow.variables:
        if variable.dtype == tf.bool:
            continue
        if "moving_variance" in variable.name:
            variable.assign(rng.uniform(0.5, 2.0, variable.shape).astype(np.float32))
        else:
            variable.assign(variable.numpy() + scale * rng.standard_normal(variable.shape).astype(np.float32))
    flows.clear_caches(flow)


@pytest.fixture(scope="session")
def word():
    from flowlib.data import PictureDistribution

    return PictureDistribution.from_text("Hi")


# The browser test needs Chromium and JupyterLab on loopback: `make test-browser` runs it.
collect_ignore = [] if os.environ.get("FLOWLIB_BROWSER_TEST") == "1" else ["browser"]

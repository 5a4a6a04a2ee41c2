"""flowlib: the small helper package behind the normalizing-flow notebook series.

Topic modules, each readable in one sitting:

- :mod:`flowlib.data`      a 2-D target distribution drawn from a picture (a word, an image)
- :mod:`flowlib.bijectors` the layer protocol; additive (NICE) and affine (RealNVP) coupling, ActNorm, a small MLP
- :mod:`flowlib.splines`   rational-quadratic spline coupling (neural spline flows)
- :mod:`flowlib.autoregressive` MAF and IAF layers on a MADE network
- :mod:`flowlib.flow`      the Flow class: layers, one-pass ``log_prob``, train/eval switch, save/load
- :mod:`flowlib.flows`     builders (NICE, RealNVP, spline, MAF/IAF), the one-pass log-density, tracing
- :mod:`flowlib.recipe`    the headline recipe: architecture and training settings, defined once
- :mod:`flowlib.train`     maximum-likelihood training with a guard against NaN losses
- :mod:`flowlib.iterate`   run a hand-written training step a number of times
- :mod:`flowlib.metrics`   held-out negative log-likelihood and its gap to the entropy bound
- :mod:`flowlib.plotting`  the quadrant-coloured layer grid, densities, training curves
- :mod:`flowlib.checkpoint` save and restore a trained flow
- :mod:`flowlib.images`    flows on small images: dequantization, bits per dimension, multi-scale flows
- :mod:`flowlib.dequantization` importance-weighted bits per dimension, variational dequantization
- :mod:`flowlib.continuous` continuous-time flows: a vector field, FFJORD, flow matching
- :mod:`flowlib.variational` flows as samplers: the reverse-KL loss and trainer, exact KLs on a grid
- :mod:`flowlib.validation` one checker per kind of argument, used by every public entry point
- :mod:`flowlib.widgets`   the layer explorer and the train-your-own-word widget
- :mod:`flowlib.config`    the environment check (``flowlib.check_environment()``) and the Colab links' ref

Importing :mod:`flowlib` does no work: the submodules (and TensorFlow) load the first
time you touch them, e.g. ``flowlib.flows.realnvp()``.
"""

from __future__ import annotations

import importlib
from typing import Any

from flowlib.config import check_environment

__version__ = "0.1.0.dev0"

_SUBMODULES = (
    "autoregressive",
    "bijectors",
    "checkpoint",
    "config",
    "continuous",
    "data",
    "dequantization",
    "flow",
    "flows",
    "images",
    "iterate",
    "metrics",
    "plotting",
    "recipe",
    "splines",
    "train",
    "validation",
    "variational",
    "widgets",
)

__all__ = ["check_environment", "__version__", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"flowlib.{name}")
    raise AttributeError(f"module 'flowlib' has no attribute {name!r}")

"""The headline recipe: the one definition of the flow that ``make demo`` trains, and how.

A :class:`Recipe` names everything that decides what a minute of training achieves: the
layer kind and architecture, and the optimiser's settings (Adam's peak learning rate,
its schedule, the batch size). :data:`HEADLINE` is the recipe chosen by measurement
(``bench/sweep.py`` on one word, then ``bench/recipe_words.py`` on several; README,
"Defaults"); the command line
(``python -m flowlib demo``), the benchmarks in ``bench/``, the widgets and the README's
"Defaults" section all read it from here, so they cannot disagree.

    >>> from flowlib.recipe import HEADLINE
    >>> flow = HEADLINE.build()                                   # doctest: +SKIP
    >>> train.fit(flow, x, steps=20_000, **HEADLINE.fit_kwargs())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from flowlib import validation

LayerKind = Literal["affine", "spline", "maf", "iaf"]
LAYER_KINDS = ("affine", "spline", "maf", "iaf")


@dataclass(frozen=True)
class Recipe:
    """A flow architecture and its training settings.

    Attributes:
        layer: ``"affine"`` (:func:`flowlib.flows.realnvp`), ``"spline"``
            (:func:`flowlib.flows.spline_flow`), ``"maf"`` (:func:`flowlib.flows.maf`) or
            ``"iaf"`` (:func:`flowlib.flows.iaf`).
        num_layers: number of coupling / autoregressive layers.
        hidden_units: widths of each layer network's hidden layers.
        normalization: ``"none"``, ``"actnorm"`` or ``"batchnorm"`` after every second layer.
        permutation: ``"reverse"``, ``"random"`` or ``"lu"`` between layers.
        num_bins, bound: spline bins and the spline interval ``[-bound, bound]`` (spline only).
        max_log_scale: bound of the log-scales (affine and MAF only).
        batch_size, learning_rate, schedule, jit_compile: for :func:`flowlib.train.fit`
            (``jit_compile=True``: the training step compiled with XLA; what it gains
            and costs is stated once, in :func:`flowlib.train.fit`).

    Every field is checked when the recipe is made (:mod:`flowlib.validation`, the same
    checks as the builders and :func:`flowlib.train.fit`), so a bad value is refused
    where it was written, not minutes later in ``build`` or ``fit``; numpy numbers are
    stored as Python ones and ``hidden_units`` as a tuple.
    """

    layer: LayerKind = "affine"
    num_layers: int = 12
    hidden_units: tuple[int, ...] = (64, 64)
    normalization: str = "none"
    permutation: str = "reverse"
    num_bins: int = 8
    bound: float = 4.0
    max_log_scale: float | None = 2.0
    batch_size: int = 256
    learning_rate: float = 7e-4
    schedule: str = "cosine"
    jit_compile: bool = False

    def __post_init__(self) -> None:
        checked = dict(
            layer=validation.choice(self.layer, "layer", LAYER_KINDS),
            num_layers=validation.num_layers(self.num_layers),
            hidden_units=validation.positive_ints(self.hidden_units, "hidden_units"),
            normalization=validation.choice(self.normalization, "normalization", validation.NORMALIZATIONS),
            permutation=validation.choice(self.permutation, "permutation", validation.PERMUTATIONS),
            num_bins=validation.num_bins(self.num_bins),
            bound=validation.spline_bound(self.bound),
            max_log_scale=validation.optional_positive_float(self.max_log_scale, "max_log_scale"),
            batch_size=validation.positive_int(self.batch_size, "batch_size"),
            learning_rate=validation.positive_float32(self.learning_rate, "learning_rate"),
            schedule=validation.choice(self.schedule, "schedule", ("cosine", "constant")),
            jit_compile=validation.boolean(self.jit_compile, "jit_compile"),
        )
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen: the checked, plain form

    def build(self, dim: int = 2, *, seed: int = 0):
        """A fresh flow of this architecture over ``R^dim`` (a :class:`~flowlib.flow.Flow`)."""
        from flowlib import flows

        common = dict(
            num_layers=self.num_layers,
            hidden_units=self.hidden_units,
            normalization=self.normalization,
            permutation=self.permutation,
            seed=seed,
        )
        if self.layer == "affine":
            return flows.realnvp(dim, max_log_scale=self.max_log_scale, **common)
        if self.layer == "spline":
            return flows.spline_flow(dim, num_bins=self.num_bins, bound=self.bound, **common)
        if self.layer in ("maf", "iaf"):
            return flows.maf(dim, max_log_scale=self.max_log_scale, inverse=self.layer == "iaf", **common)
        raise ValueError(f"layer must be 'affine', 'spline', 'maf' or 'iaf', got {self.layer!r}")

    def fit_kwargs(self) -> dict[str, Any]:
        """The optimiser settings as keyword arguments of :func:`flowlib.train.fit`."""
        return dict(
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            schedule=self.schedule,
            jit_compile=self.jit_compile,
        )

    def replace(self, **changes) -> Recipe:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def label(self) -> str:
        """A one-line description, e.g. for benchmark tables."""
        width = "x".join(str(h) for h in self.hidden_units)
        kind = {
            "affine": "affine",
            "spline": f"spline K={self.num_bins} B={self.bound:g}",
            "maf": "MAF",
            "iaf": "IAF",
        }
        return (
            f"{self.num_layers:>2} {kind.get(self.layer, self.layer)} ({width}) {self.normalization:<9} "
            f"{self.permutation:<7} batch {self.batch_size:<4} lr {self.learning_rate:.1e} "
            f"{self.schedule}{' XLA' if self.jit_compile else ''}"
        )


# The best affine-coupling recipe of bench/sweep.py (the headline before spline layers):
# 12 couplings of (64, 64), no normalisation, batch 256, 7e-4 with cosine decay; with XLA,
# which gains it steps per second (see flowlib.train.fit's jit_compile).
# Its batch size and learning rate are flowlib.train.fit's defaults (train.DEFAULT_BATCH_SIZE,
# train.DEFAULT_LEARNING_RATE), stated again here so that this module, read by the command
# line before TensorFlow is imported, need not import train; tests/test_train.py checks that
# the two agree.
AFFINE = Recipe(
    layer="affine",
    num_layers=12,
    hidden_units=(64, 64),
    normalization="none",
    batch_size=256,
    learning_rate=7e-4,
    schedule="cosine",
    jit_compile=True,
)

# The neural spline flow: its layer kind, depth and rate chosen by bench/sweep.py --stage layers
# on "Flow" (bench/results/sweep_layers.txt, with 16 bins), its bins by bench/recipe_words.py on
# words kept for choosing (bench/results/recipe_words.txt: 32 bins halve the gap on "Sampling")
# and judged on the words bench/peers.py reports (bench/results/recipe_words_judged.txt):
# 4 rational-quadratic spline couplings of (64, 64) with 32 bins on [-4, 4], swaps between
# them, no normalisation, batch 256, 2e-3 with cosine decay, XLA.
SPLINE = Recipe(
    layer="spline",
    num_layers=4,
    hidden_units=(64, 64),
    num_bins=32,
    bound=4.0,
    normalization="none",
    batch_size=256,
    learning_rate=2e-3,
    schedule="cosine",
    jit_compile=True,
)

# MAF at the affine recipe's optimiser settings (8 layers of (64, 64)).
MAF = AFFINE.replace(layer="maf", num_layers=8)

# One recipe per layer kind, for ``python -m flowlib demo --layer ...``.
RECIPES: dict[str, Recipe] = {"affine": AFFINE, "spline": SPLINE, "maf": MAF}

# The headline (bench/sweep.py, README "Defaults").
HEADLINE = SPLINE

# Training steps of the demo: about a minute on 2 CPU cores at the headline's step rate.
DEMO_STEPS = 20_000

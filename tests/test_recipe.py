"""The recipes of flowlib.recipe: each builds its layer kind, trains with fit's arguments,
and the command line and README say what the headline is."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from flowlib import flows, recipe, train
from flowlib.__main__ import build_parser, demo_recipe

ROOT = Path(__file__).resolve().parents[1]
LAYER_TYPES = {"affine": "AffineCoupling", "spline": "SplineCoupling", "maf": "MAF"}


@pytest.mark.parametrize("kind", sorted(recipe.RECIPES))
def test_each_recipe_builds_its_layer_kind(kind):
    chosen = recipe.RECIPES[kind]
    assert chosen.layer == kind
    flow = chosen.build(seed=0)
    names = [type(layer).__name__ for layer in flows.layers(flow)]
    assert names.count(LAYER_TYPES[kind]) == chosen.num_layers, names
    assert set(chosen.fit_kwargs()) <= set(inspect.signature(train.fit).parameters)


def test_the_headline_is_one_of_the_recipes():
    assert recipe.HEADLINE in recipe.RECIPES.values()


def test_the_command_line_starts_from_the_layers_recipe():
    parser = build_parser()
    for kind, expected in recipe.RECIPES.items():
        args = parser.parse_args(["demo", "--layer", kind])
        assert demo_recipe(args) == expected
    args = parser.parse_args(["demo", "--layer", "affine", "--num-layers", "3", "--learning-rate", "0.01"])
    assert demo_recipe(args) == recipe.AFFINE.replace(num_layers=3, learning_rate=0.01)
    assert demo_recipe(parser.parse_args(["demo"])) == recipe.HEADLINE


def test_readme_quotes_the_headline():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Defaults, and how they were chosen", 1)[1].split("\n## ", 1)[0]
    headline = recipe.HEADLINE
    expected = [
        f"{headline.num_layers} rational-quadratic spline couplings",
        f"{headline.num_bins} bins",
        f"[-{headline.bound:g}, {headline.bound:g}]",
        f"two hidden layers of {headline.hidden_units[0]}",
        f"Adam at {headline.learning_rate:g}",
        f"batches of {headline.batch_size}",
        f"{recipe.DEMO_STEPS:,} steps",
    ]
    missing = [phrase for phrase in expected if phrase not in section]
    assert not missing, f"README's Defaults section does not say: {missing}"
    assert headline.layer == "spline" and re.search(r"XLA", section)


def test_a_recipe_checks_and_stores_plain_values_when_made():
    import numpy as np

    chosen = recipe.Recipe(
        num_layers=np.int64(3), hidden_units=[8, 8], learning_rate=np.float32(0.5), bound=np.int32(3)
    )
    assert chosen == recipe.Recipe(num_layers=3, hidden_units=(8, 8), learning_rate=0.5, bound=3.0)
    assert (
        type(chosen.num_layers) is int and type(chosen.learning_rate) is float and type(chosen.bound) is float
    )
    hash(chosen)  # a list of hidden units would make it unhashable
    # Refused where it is written (issue 20), not later in build() or fit().
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        recipe.HEADLINE.replace(batch_size=0)
    with pytest.raises(ValueError, match="num_layers must be at most 1000, got 1099511627776"):
        recipe.Recipe(num_layers=2**40)


@pytest.mark.parametrize("kind", sorted(recipe.RECIPES))
def test_each_recipe_builds_at_the_largest_seed(kind):
    # `python -m flowlib demo --layer spline --seed 2147483647` overflowed seed * 1000 + i.
    flow = recipe.RECIPES[kind].replace(num_layers=2, hidden_units=(4,)).build(seed=2**31 - 1)
    assert flows.num_parameters(flow) > 0

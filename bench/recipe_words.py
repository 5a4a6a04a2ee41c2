"""Does the headline's recipe need to grow with the word? A grid on words kept for choosing.

The first round of choosing the headline, ``bench/sweep.py``, worked on one word, "Flow",
and picked 4 spline couplings of 16 bins (:func:`first_round`). ``bench/peers.py`` reported
that pick on other words, where its lead over the peers shrank with the word's length. This
bench is the second round: it trains variations of the first round's pick (depth, bins,
width; everything else unchanged) for the same wall-clock budget on *choosing* words, which
``bench/peers.py`` never reports on, so that the variation picked here (:func:`pick`, now
``flowlib.recipe.HEADLINE``) is judged on the reported words without having seen them.

Every run is ``bench/_budget.train_for_budget`` (as the sweep: a fresh flow, seed 0, the
budget counting compilation, cosine decay over it) in one process, the runs one at a time,
each printed with the load; the table at the end is the held-out gap (nats above the
entropy bound) per word and variation.

    .venv/bin/python bench/recipe_words.py                 # 6 variations x 3 words, about 22 minutes
    .venv/bin/python bench/recipe_words.py --grid bins     # bins, bound, rate, batch: about 25 minutes
    .venv/bin/python bench/recipe_words.py --judge         # the pick against the first round's, reported words
    .venv/bin/python bench/recipe_words.py --budget 5 --words Fun --no-record   # a smoke run

``--judge`` is the second half of the protocol: the variation picked on the choosing words
(:func:`pick`) and the first round's pick, trained the same way on the words ``bench/peers.py`` reports
on ("Flow" and its other targets, the heart included), so that the pick is judged on words
it was not chosen on before it becomes the headline.
"""

from __future__ import annotations

import argparse
import dataclasses

import _budget
import _common

CHOOSING_WORDS = ("Fun", "Bayes", "Sampling")  # 3, 5 and 8 letters; peers.py reports on others


def first_round():
    """The first round's pick (``bench/sweep.py`` on "Flow"): the headline's shape and rate, 16 bins."""
    from flowlib.recipe import HEADLINE

    return dataclasses.replace(HEADLINE, num_bins=16)


def variations():
    """The first round's pick and five variations of its depth, bins and width."""
    base = first_round()
    return [
        base,
        dataclasses.replace(base, num_layers=8),
        dataclasses.replace(base, num_bins=32),
        dataclasses.replace(base, num_layers=6, num_bins=32),
        dataclasses.replace(base, hidden_units=(128, 128)),
        dataclasses.replace(base, num_layers=8, num_bins=32, hidden_units=(128, 128)),
    ]


def bins_grid():
    """The 32-bin variation (the shape grid's best on "Sampling") and changes around it: 64 bins,
    the interval [-3, 3], half and 1.5 times the learning rate, batches of 512, 5 layers."""
    base = first_round()
    bins32 = pick()
    return [
        base,
        bins32,
        dataclasses.replace(base, num_bins=64),
        dataclasses.replace(bins32, bound=3.0),
        dataclasses.replace(bins32, learning_rate=1e-3),
        dataclasses.replace(bins32, learning_rate=3e-3),
        dataclasses.replace(bins32, batch_size=512),
        dataclasses.replace(bins32, num_layers=5),
    ]


GRIDS = {"shape": variations, "bins": bins_grid}


def pick():
    """The variation picked on the choosing words, 32 bins (``--grid shape``: on "Sampling" it
    halves the first round's gap, on the shorter words it is level); now the headline."""
    return dataclasses.replace(first_round(), num_bins=32)


def judge(budget: float) -> None:
    """The first round's pick and :func:`pick` on the targets ``bench/peers.py`` reports on."""
    import peers

    before = first_round()
    _common.header(
        f"the pick against the first round's on the reported targets: held-out gap after {budget:g} s of fit"
    )
    rows = []
    for name in ("Flow", *peers.OTHER_TARGETS):
        target, x_train, x_test = peers.target_and_data(name)
        _budget.warm_up(x_train)
        print(f"\n## {name!r}: entropy bound {target.entropy():.3f} nats")
        gaps = []
        for recipe in (before, pick()):
            result = _budget.train_for_budget(recipe, budget, target, x_train, x_test)
            gaps.append(result.gap)
            print(f"   {result.line()}", flush=True)
        rows.append((name, *gaps))
    print(
        f"\n## gap (nats): the first round's pick ({before.num_bins} bins) against this one's ({pick().num_bins} bins)"
    )
    print(f"   {'target':<14}{'first':>10}{'pick':>10}{'pick / first':>14}")
    for name, first_gap, pick_gap in rows:
        print(f"   {name:<14}{first_gap:10.3f}{pick_gap:10.3f}{pick_gap / first_gap:13.2f}x")
    print(f"# {_common.load()} at the end")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of fit per run (default 60)")
    parser.add_argument("--words", default=",".join(CHOOSING_WORDS), help="comma-separated choosing words")
    parser.add_argument(
        "--grid", choices=sorted(GRIDS), default="shape", help="which variations (default shape)"
    )
    parser.add_argument(
        "--judge", action="store_true", help="the pick against the first round's on the reported targets"
    )
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    if args.judge:
        with _common.recorded("recipe_words_judged", enabled=not args.no_record):
            judge(args.budget)
        return
    words = [word for word in args.words.split(",") if word]
    name = "recipe_words" if args.grid == "shape" else f"recipe_words_{args.grid}"
    with _common.recorded(name, enabled=not args.no_record):
        _common.header(f"recipe on choosing words: held-out gap after {args.budget:g} s of fit")
        gaps: dict[tuple[str, str], float] = {}
        labels = []
        for word in words:
            target, x_train, x_test = _budget.data(word)
            _budget.warm_up(x_train)
            print(f"\n## {word!r}: entropy bound {target.entropy():.3f} nats")
            for recipe in GRIDS[args.grid]():
                result = _budget.train_for_budget(recipe, args.budget, target, x_train, x_test)
                label = recipe.label().strip()
                if label not in labels:
                    labels.append(label)
                gaps[word, label] = result.gap
                print(f"   {result.line()}", flush=True)
        print("\n## gap (nats) per word and variation")
        print(f"   {'variation':<84}" + "".join(f"{word:>10}" for word in words))
        for label in labels:
            print(f"   {label:<84}" + "".join(f"{gaps[word, label]:10.3f}" for word in words))
        print(f"# {_common.load()} at the end")


if __name__ == "__main__":
    main()

"""Does the headline's recipe need to grow with the word? A grid on words kept for choosing.

The headline (``flowlib.recipe.HEADLINE``) was chosen by ``bench/sweep.py`` on one word,
"Flow". ``bench/peers.py`` reports it on other words, where its lead over the peers shrinks
with the word's length. This bench trains a few variations of the headline (depth, bins,
width; everything else the headline's) for the same wall-clock budget on *choosing* words,
which ``bench/peers.py`` never reports on, so that a recipe picked here can be judged on the
reported words without having seen them.

Every run is ``bench/_budget.train_for_budget`` (as the sweep: a fresh flow, seed 0, the
budget counting compilation, cosine decay over it) in one process, the runs one at a time,
each printed with the load; the table at the end is the held-out gap (nats above the
entropy bound) per word and variation.

    .venv/bin/python bench/recipe_words.py                 # 6 variations x 3 words, about 22 minutes
    .venv/bin/python bench/recipe_words.py --budget 5 --words Fun --no-record   # a smoke run
"""

from __future__ import annotations

import argparse
import dataclasses

import _budget
import _common

CHOOSING_WORDS = ("Fun", "Bayes", "Sampling")  # 3, 5 and 8 letters; peers.py reports on others


def variations():
    """The headline and five variations of its depth, bins and width."""
    from flowlib.recipe import HEADLINE

    return [
        HEADLINE,
        dataclasses.replace(HEADLINE, num_layers=8),
        dataclasses.replace(HEADLINE, num_bins=32),
        dataclasses.replace(HEADLINE, num_layers=6, num_bins=32),
        dataclasses.replace(HEADLINE, hidden_units=(128, 128)),
        dataclasses.replace(HEADLINE, num_layers=8, num_bins=32, hidden_units=(128, 128)),
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of fit per run (default 60)")
    parser.add_argument("--words", default=",".join(CHOOSING_WORDS), help="comma-separated choosing words")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    words = [word for word in args.words.split(",") if word]
    with _common.recorded("recipe_words", enabled=not args.no_record):
        _common.header(f"recipe on choosing words: held-out gap after {args.budget:g} s of fit")
        gaps: dict[tuple[str, str], float] = {}
        labels = []
        for word in words:
            target, x_train, x_test = _budget.data(word)
            _budget.warm_up(x_train)
            print(f"\n## {word!r}: entropy bound {target.entropy():.3f} nats")
            for recipe in variations():
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

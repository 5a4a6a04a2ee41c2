"""Which architecture and schedule learn the most in a fixed wall-clock budget?

A coordinate-wise sweep, not a grid: start from a base configuration, vary one setting
at a time over a few values, keep the best (lowest held-out gap to the entropy bound)
and move on to the next setting with it. The order:

1. normalization: batchnorm / actnorm / none
2. width of the two hidden layers of each coupling network: 64 / 128 / 256
3. depth, the number of affine couplings: 4 / 8 / 12
4. batch size with a matched learning rate (scaled with the square root of the batch,
   1e-3 at 512): 256 / 512 / 1024 / 2048
5. schedule and peak learning rate: cosine or constant, at the matched rate or 3 times it
   (1e-3 and 3e-3 at batch 512)

6. (``--stage layers``, from the best affine recipe, every run compiled with XLA) the
   layer kind: affine coupling, rational-quadratic spline coupling (8 layers, 8 bins on
   [-4, 4]), MAF, the spline flow with learned LU mixing; if a spline flow wins:
7. its bins: 8 / 16 / 32
8. its peak learning rate: the affine recipe's 7e-4 / 2e-3
9. its depth: 4 / 6 / 8 couplings

Every run trains a fresh flow (seed 0) on the word "Flow" (100,000 training points) for
the same budget of wall-clock seconds of ``train.fit``, compilation included, sized as
described in ``bench/_budget.py``, and is scored by the held-out gap on 50,000 fresh
points. One seed per configuration: differences below a few hundredths of a nat are
within the seed-to-seed noise and the sweep prefers the cheaper setting there.

    .venv/bin/python bench/sweep.py                  # stages 1-6, 60 s per run, about 35 minutes
    .venv/bin/python bench/sweep.py --stage layers   # stage 6 only (sweep_layers.txt)
    .venv/bin/python bench/sweep.py --budget 20      # a quicker, rougher sweep
"""

from __future__ import annotations

import argparse
import dataclasses
import math

import _budget
import _common

TIE = 0.02  # nats: a smaller improvement does not count as better


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--budget", type=float, default=60.0, help="seconds of fit per run (default: %(default)s)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="train each run for this many steps instead of --budget seconds: a comparison "
        "at equal steps, for a machine too loaded for a fair time budget",
    )
    parser.add_argument(
        "--first",
        type=int,
        default=None,
        help="stage 6: only the first N layer candidates, and no learning-rate stage",
    )
    parser.add_argument(
        "--stage",
        choices=("all", "affine", "layers"),
        default="all",
        help="stages 1-5 (affine), 6 (layers) or all (default: %(default)s)",
    )
    parser.add_argument("--no-record", action="store_true", help="do not write bench/results/sweep*.txt")
    args = parser.parse_args(argv)

    name = "sweep_layers" if args.stage == "layers" else "sweep"
    with _common.recorded(name, enabled=not args.no_record):
        spent = f"{args.steps} steps" if args.steps else f"{args.budget:g} s of fit (compilation included)"
        _common.header(f"sweep: held-out gap after {spent}, coordinate-wise from a base configuration")
        print(__doc__.split("\n\n", 1)[1].split("\n\n    .venv")[0])
        print()
        target, x_train, x_test = _budget.data()
        print(f"# target 'Flow': entropy bound {target.entropy():.3f} nats")
        _budget.warm_up(x_train)
        done: dict[tuple, _budget.Result] = {}

        def run(config: _budget.Config) -> _budget.Result:
            key = dataclasses.astuple(config)
            if key not in done:
                done[key] = _budget.train_for_budget(
                    config, args.budget, target, x_train, x_test, steps=args.steps
                )
                print("  " + done[key].line(), flush=True)
            else:
                print("  " + done[key].line() + " (same as above)", flush=True)
            return done[key]

        def choose(results: list[_budget.Result], cost) -> _budget.Result:
            # the best gap; among those within TIE of it, the cheapest
            best = min(r.gap for r in results)
            return min((r for r in results if r.gap <= best + TIE), key=cost)

        if args.stage == "layers":
            layer_stage(run, choose, first=args.first)
            return
        base = _budget.Config(
            layer="affine",
            num_layers=8,
            hidden_units=(128, 128),
            normalization="batchnorm",
            batch_size=512,
            learning_rate=1e-3,
            schedule="cosine",
        )
        print(f"\n## base: {base.label()}")

        print("\n## 1. normalization")
        results = [run(dataclasses.replace(base, normalization=n)) for n in ("batchnorm", "actnorm", "none")]
        order = {"none": 0, "actnorm": 1, "batchnorm": 2}
        base = choose(results, lambda r: order[r.config.normalization]).config
        print(f"-> {base.normalization}")

        print("\n## 2. width")
        results = [run(dataclasses.replace(base, hidden_units=(w, w))) for w in (64, 128, 256)]
        base = choose(results, lambda r: r.config.hidden_units[0]).config
        print(f"-> {base.hidden_units}")

        print("\n## 3. depth")
        results = [run(dataclasses.replace(base, num_layers=d)) for d in (4, 8, 12)]
        base = choose(results, lambda r: r.config.num_layers).config
        print(f"-> {base.num_layers}")

        print("\n## 4. batch size, learning rate matched as 1e-3 * sqrt(batch / 512)")
        peak_factor = base.learning_rate / 1e-3
        results = [
            run(
                dataclasses.replace(
                    base, batch_size=b, learning_rate=float(f"{peak_factor * 1e-3 * math.sqrt(b / 512):.2g}")
                )
            )
            for b in (256, 512, 1024, 2048)
        ]
        base = choose(results, lambda r: r.config.batch_size).config
        print(f"-> {base.batch_size}, learning rate {base.learning_rate:g}")

        print("\n## 5. schedule and peak learning rate (matched rate, 3x it)")
        matched = base.learning_rate
        results = [
            run(dataclasses.replace(base, schedule=s, learning_rate=float(f"{f * matched:.2g}")))
            for s in ("cosine", "constant")
            for f in (1, 3)
        ]
        base = choose(results, lambda r: (r.config.schedule != "cosine", r.config.learning_rate)).config
        print(f"-> {base.schedule}, peak {base.learning_rate:g}")

        print(f"\n## chosen: {base.label()}")
        final = done[dataclasses.astuple(base)]
        print(
            f"   gap {final.gap:.3f} ± {final.standard_error:.3f} nats after {final.seconds:.1f} s "
            f"({final.steps} steps); {len(done)} runs; {_common.load()} at the end"
        )
        if args.stage == "all":
            layer_stage(run, choose, base)


def layer_stage(run, choose, base=None, first: int | None = None) -> None:
    """Stages 6-9: the layer kind, then the spline's bins, peak learning rate and depth (all with XLA)."""
    from flowlib.recipe import AFFINE

    base = dataclasses.replace(base or AFFINE, jit_compile=True)
    print(
        f"\n## 6. layer kind (optimiser of the affine recipe: batch {base.batch_size}, "
        f"lr {base.learning_rate:g}, {base.schedule}, XLA)"
    )
    spline = dataclasses.replace(
        base, layer="spline", num_layers=8, hidden_units=(64, 64), num_bins=8, bound=4.0
    )
    candidates = [
        base,
        spline,
        dataclasses.replace(base, layer="maf", num_layers=8, hidden_units=(64, 64)),
        dataclasses.replace(spline, permutation="lu"),
    ]
    results = [run(config) for config in candidates[:first]]
    best = choose(results, lambda r: -r.rate).config  # among near-ties, the faster step
    print(f"-> {best.label()}")
    if first is not None or best.layer != "spline":
        return
    print("\n## 7. spline bins")
    results = [run(dataclasses.replace(best, num_bins=k)) for k in (8, 16, 32)]
    best = choose(results, lambda r: r.config.num_bins).config
    print(f"-> {best.num_bins} bins")
    print("\n## 8. peak learning rate (x1, about x3)")
    results = [run(dataclasses.replace(best, learning_rate=rate)) for rate in (best.learning_rate, 2e-3)]
    best = choose(results, lambda r: r.config.learning_rate).config
    print(f"-> {best.learning_rate:g}")
    print("\n## 9. depth")
    results = [run(dataclasses.replace(best, num_layers=d)) for d in (4, 6, 8)]
    best = choose(results, lambda r: r.config.num_layers).config
    print(f"-> {best.num_layers} layers")
    print("\n## chosen headline:")
    run(best)


if __name__ == "__main__":
    main()

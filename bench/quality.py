"""Quality per second: the headline flow trained for 20, 60 and 180 s of wall-clock time.

The headline flow is ``flowlib.recipe.HEADLINE`` (the architecture and optimiser
settings the sweep chose), trained by ``train.fit`` on the default word
"Flow" (100,000 training points, like the demo). Each budget is a fresh flow with the
same seed; the cosine schedule runs over the time budget (``schedule_by_time=True``, see
``bench/_budget.py``), and the budget counts the whole call of ``fit``, compilation
included. Each line prints the held-out NLL on 50,000 fresh points, the entropy bound
``log |ink area|`` and their gap (an estimate of KL(target || flow)) with its standard
error, and the load average when the run ended.

The 60 s target (a gap of at most 0.15 nats) is about a quiet machine: before each run
the script waits (up to ``--wait`` seconds) for the 1-minute load to drop below
``--max-load``, and says what load it got.

    .venv/bin/python bench/quality.py
    .venv/bin/python bench/quality.py --budgets 20 --wait 0     # one quick run
"""

from __future__ import annotations

import argparse

import _budget
import _common


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[20.0, 60.0, 180.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-load", type=float, default=2.5)
    parser.add_argument(
        "--wait", type=float, default=120.0, help="seconds to wait for a quiet machine per run"
    )
    parser.add_argument(
        "--jit-compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override the recipe's XLA setting (default: the recipe's own; the headline uses XLA); "
        "an override is recorded as quality_xla.txt or quality_no_xla.txt",
    )
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)

    config = _budget.headline()
    name = {None: "quality", True: "quality_xla", False: "quality_no_xla"}[args.jit_compile]
    if args.jit_compile is not None:
        config = config.replace(jit_compile=args.jit_compile)  # the label then says what ran
    with _common.recorded(name, enabled=not args.no_record):
        _common.header("quality per second: held-out gap of the headline flow after a wall-clock budget")
        print(f"# headline flow: {config.label()}")
        target, x_train, x_test = _budget.data()
        print(
            f"# target 'Flow': entropy bound {target.entropy():.3f} nats; 100,000 training points, "
            f"50,000 held out"
        )
        _budget.warm_up(x_train)
        print(
            f"\n{'budget':>7} {'steps':>6} {'seconds':>8} {'steps/s':>8} {'first call':>10} "
            f"{'NLL':>7} {'entropy':>8} {'gap':>7} {'± s.e.':>7}  load (1, 5, 15 min) at the end"
        )
        for budget in args.budgets:
            note = _common.wait_for_quiet(args.max_load, args.wait) if args.wait > 0 else _common.load()
            result = _budget.train_for_budget(config, budget, target, x_train, x_test, seed=args.seed)
            print(
                f"{budget:6.0f}s {result.steps:6d} {result.seconds:8.1f} {result.rate:8.1f} "
                f"{result.fixed_seconds:9.1f}s {result.nll:7.3f} {result.entropy:8.3f} {result.gap:7.3f} "
                f"{result.standard_error:7.3f}  {result.load_after} (start: {note})",
                flush=True,
            )
        print(f"# {_common.load()} at the end")


if __name__ == "__main__":
    main()

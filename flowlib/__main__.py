"""Command line: ``python -m flowlib demo`` trains the headline flow and writes its figures."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


# The headline flow: flowlib.recipe.HEADLINE (the architecture and schedule the sweep in
# bench/sweep.py chose), trained for recipe.DEMO_STEPS steps, about a minute.
DEMO_STEPS_FAST = 200


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from flowlib.recipe import DEMO_STEPS, HEADLINE

    parser = argparse.ArgumentParser(prog="python -m flowlib", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="train the headline flow on a word and write its figures",
        description="Train the headline flow (flowlib.recipe.HEADLINE: a standard normal pushed onto points drawn "
                    "from a word rendered as text), print its held-out NLL next to the entropy bound, "
                    "and write figures: the layer-by-layer grid, the learned density beside the "
                    "target, and the training curve.")
    demo.add_argument("--text", default="Flow", help="the word to learn (default: %(default)s)")
    demo.add_argument("--steps", type=_positive_int, default=None,
                      help=f"training steps (default: {DEMO_STEPS}, about a minute on 2 CPU cores; "
                           f"{DEMO_STEPS_FAST} with --fast)")
    demo.add_argument("--layer", choices=("affine", "spline", "maf"), default=HEADLINE.layer,
                      help="layer kind: RealNVP's affine coupling, rational-quadratic spline coupling or "
                           "MAF (default: %(default)s)")
    demo.add_argument("--batch-size", type=_positive_int, default=HEADLINE.batch_size,
                      help="points per training step (default: %(default)s)")
    demo.add_argument("--learning-rate", type=_positive_float, default=HEADLINE.learning_rate,
                      help="Adam's peak learning rate, cosine-decayed (default: %(default)s)")
    demo.add_argument("--num-layers", type=_positive_int, default=HEADLINE.num_layers,
                      help="coupling (or autoregressive) layers (default: %(default)s)")
    demo.add_argument("--hidden-units", type=_positive_int, default=HEADLINE.hidden_units[0],
                      help="width of the two hidden layers of each coupling network (default: %(default)s)")
    demo.add_argument("--normalization", choices=("batchnorm", "actnorm", "none"), default=HEADLINE.normalization,
                      help="normalisation layer after every second coupling (default: %(default)s, the "
                           "sweep's choice; the post's stack is --num-layers 8 --hidden-units 128 "
                           "--layer affine --normalization batchnorm)")
    demo.add_argument("--num-samples", type=_positive_int, default=8000,
                      help="base samples in the layer-by-layer figure (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="seed of weights, data and batches (default: %(default)s)")
    demo.add_argument("--out", type=Path, default=Path("figures"), help="folder for the figures (default: %(default)s)")
    demo.add_argument("--fast", action="store_true",
                      help="a quick run for tests: few steps, small data (also set by FLOWLIB_FAST=1)")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def run_demo(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flowlib import config, data, flows, metrics, plotting, train
    from flowlib.recipe import DEMO_STEPS, HEADLINE

    fast = args.fast or config.fast_mode()
    steps = args.steps or (DEMO_STEPS_FAST if fast else DEMO_STEPS)
    num_train, num_test = (20_000, 5_000) if fast else (100_000, 50_000)
    try:
        target = data.PictureDistribution.from_text(args.text)
    except ValueError as error:
        print(f"error: --text: {error}", file=sys.stderr)
        return 2
    x_train = target.sample(num_train, seed=args.seed)
    x_test = target.sample(num_test, seed=args.seed + 1)
    chosen = HEADLINE.replace(layer=args.layer, num_layers=args.num_layers,
                              hidden_units=(args.hidden_units,) * len(HEADLINE.hidden_units),
                              normalization=args.normalization, batch_size=args.batch_size,
                              learning_rate=args.learning_rate)
    flow = chosen.build(seed=args.seed)
    print(f"training {chosen.label()} ({flows.num_parameters(flow):,} parameters) "
          f"on “{target.name}” for {steps} steps")
    history = train.fit(flow, x_train, steps=steps, seed=args.seed, progress=not args.no_progress,
                        **chosen.fit_kwargs())
    result = metrics.evaluate(flow, target, x_test)

    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    fig = plotting.plot_layer_grid(flow, num_samples=args.num_samples, seed=args.seed)
    written.append(args.out / "layers.png")
    fig.savefig(written[-1], dpi=110)
    fig = plotting.plot_density(flow, target, resolution=120 if fast else 300,
                                title=f"learned density (gap {result.gap:.3f} nats)")
    written.append(args.out / "density.png")
    fig.savefig(written[-1], dpi=110)
    ax = plotting.plot_training_curve(history, entropy=result.entropy)
    written.append(args.out / "training.png")
    ax.figure.savefig(written[-1], dpi=110, bbox_inches="tight")
    plt.close("all")

    print(f"trained {history.steps} steps in {history.seconds:.1f} s"
          + (f" ({history.rescues} rescues)" if history.rescues else ""))
    print(result)
    for path in written:
        print(f"wrote {path}")
    return 0 if not history.stopped else 1


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return run_demo(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())

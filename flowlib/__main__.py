"""Command line: ``python -m flowlib demo`` trains the headline flow and writes its figures."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from flowlib import validation

# The headline flow and its training settings come from flowlib.recipe (no TensorFlow).
from flowlib.recipe import DEMO_STEPS, HEADLINE, RECIPES

DEMO_STEPS_FAST = 200


# --------------------------------------------------------------------------- quiet start-up
# The TensorFlow wheel prints these lines on every start on a machine without a GPU (and the
# factory and placer lines on every machine): C++ log lines written before Python can
# intervene, not silenced by TF_CPP_MIN_LOG_LEVEL. A newcomer reads them as failure.
_ALWAYS_NOISE = (
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "TF-TRT Warning: Could not find TensorRT",
    # An information line (TensorFlow 2.20 and newer print it whatever TF_CPP_MIN_LOG_LEVEL says).
    "oneDNN custom operations are on",
)
# Only noise where there is no GPU: with one, a failing cuInit is a real problem.
_NO_GPU_NOISE = ("failed call to cuInit", "Could not find cuda drivers on your machine")


def gpu_present() -> bool:
    """True if the machine has an NVIDIA device node (then CUDA start-up errors are real)."""
    return any(Path("/dev").glob("nvidia[0-9]*"))


def _is_noise(line: str, gpu: bool) -> bool:
    return any(text in line for text in _ALWAYS_NOISE + (() if gpu else _NO_GPU_NOISE))


@contextlib.contextmanager
def quiet_tensorflow_startup() -> Iterator[None]:
    """While the block runs, drop TensorFlow's known start-up noise from standard error.

    Standard error (file descriptor 2, which TensorFlow's C++ logging writes to) passes
    through a filter that removes only the lines listed in ``_ALWAYS_NOISE`` (and, on a
    machine without an NVIDIA device, ``_NO_GPU_NOISE``) and forwards every other line
    unchanged, so a real error still shows. After the block standard error is restored:
    nothing printed later is filtered. Put the import of TensorFlow and its device
    discovery in the block.
    """
    try:
        sys.stderr.flush()
        original = os.dup(2)
        read_end, write_end = os.pipe()
    except OSError:  # no usable standard error: nothing to clean
        yield
        return
    gpu = gpu_present()

    def forward() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for raw in pipe:
                if not _is_noise(raw.decode("utf-8", "replace"), gpu):
                    os.write(original, raw)

    thread = threading.Thread(target=forward, daemon=True)
    thread.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end: the thread sees the end
        thread.join(timeout=10)
        os.close(original)


# --------------------------------------------------------------------------- arguments
class _Parser(argparse.ArgumentParser):
    """argparse, with errors on one line: ``python -m flowlib demo: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _argument(parse, check, description: str):
    """An argparse type: ``check(parse(text))`` with a :mod:`flowlib.validation` check."""

    def convert(text: str):
        try:
            return check(parse(text), "value")
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {description}, got {text!r}") from None

    return convert


def _word(text: str) -> str:
    """The word to draw, checked while parsing (before TensorFlow starts)."""
    try:
        return validation.line_of_text(text, "text")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


_positive_int = _argument(int, validation.positive_int, "a positive integer")
_positive_float = _argument(float, validation.positive_float, "a positive, finite number")
_seed = _argument(int, validation.seed, f"an integer from 0 to {validation.MAX_SEED}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m flowlib", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train the headline flow on a word and write its figures",
        description="Train the headline flow of flowlib.recipe (a standard normal pushed onto points drawn "
        "from a word rendered as text), print its held-out NLL next to the entropy bound, "
        "and write figures: the layer-by-layer grid, the learned density beside the "
        "target, and the training curve.",
    )
    demo.add_argument("--text", type=_word, default="Flow", help="the word to learn (default: %(default)s)")
    demo.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help=f"training steps (default: {DEMO_STEPS}, about a minute on 2 CPU cores; "
        f"{DEMO_STEPS_FAST} with --fast)",
    )
    demo.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help=f"points per training step (default: the layer's recipe, {HEADLINE.batch_size} for the headline)",
    )
    demo.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=None,
        help="Adam's peak learning rate, cosine-decayed (default: the layer's recipe, "
        f"{HEADLINE.learning_rate:g} for the headline)",
    )
    demo.add_argument(
        "--layer",
        choices=("affine", "spline", "maf"),
        default=HEADLINE.layer,
        help="kind of layer: affine coupling (RealNVP), rational-quadratic spline coupling, "
        "or MAF, each with its recipe of flowlib.recipe.RECIPES (default: %(default)s, the headline)",
    )
    demo.add_argument(
        "--num-layers",
        type=_positive_int,
        default=None,
        help=f"coupling (or autoregressive) layers (default: the layer's recipe, {HEADLINE.num_layers} "
        "for the headline)",
    )
    demo.add_argument(
        "--hidden-units",
        type=_positive_int,
        default=None,
        help="width of the two hidden layers of each layer's network (default: the layer's recipe, "
        f"{HEADLINE.hidden_units[0]} for the headline)",
    )
    demo.add_argument(
        "--normalization",
        choices=("batchnorm", "actnorm", "none"),
        default=None,
        help="normalisation layer after every second coupling (default: the layer's recipe, "
        f"{HEADLINE.normalization!r} for the headline; the post's stack is --layer affine "
        "--num-layers 8 --hidden-units 128 --normalization batchnorm)",
    )
    demo.add_argument(
        "--num-samples",
        type=_positive_int,
        default=8000,
        help="base samples in the layer-by-layer figure (default: %(default)s)",
    )
    demo.add_argument(
        "--seed", type=_seed, default=0, help="seed of weights, data and batches (default: %(default)s)"
    )
    demo.add_argument(
        "--out", type=Path, default=Path("figures"), help="folder for the figures (default: %(default)s)"
    )
    demo.add_argument(
        "--fast",
        action="store_true",
        help="a quick run for tests: few steps, small data (also set by FLOWLIB_FAST=1)",
    )
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demo.set_defaults(command_parser=demo)  # for errors found after parsing (check_demo_arguments)
    return parser


def _check_out(out: Path) -> str | None:
    """Why figures cannot be written to the folder ``out`` (None if they can): tried, not guessed."""
    if out.exists() and not out.is_dir():
        return f"{str(out)!r} exists and is not a folder"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        return f"cannot write to {str(out)!r}: {error.strerror or error}"
    return None


def demo_recipe(args: argparse.Namespace):
    """The recipe of the layer kind asked for, with the settings the command line changed."""
    changes = dict(
        num_layers=args.num_layers,
        hidden_units=None if args.hidden_units is None else (args.hidden_units,) * 2,
        normalization=args.normalization,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
    )
    return RECIPES[args.layer].replace(**{key: value for key, value in changes.items() if value is not None})


def check_demo_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """Check every argument of ``demo`` before any work; return the target and the flow.

    Numbers were checked while parsing; here come the word (rendered), the output folder
    (a file is created and removed in it) and the flow's arguments together (built). Each
    problem ends the program through ``parser.error``: one line, exit code 2.
    """
    from flowlib import data

    try:
        target = data.PictureDistribution.from_text(args.text)
    except (TypeError, ValueError) as error:
        parser.error(f"argument --text: {error}")
    problem = _check_out(args.out)
    if problem:
        parser.error(f"argument --out: {problem}")
    try:
        flow = demo_recipe(args).build(seed=args.seed)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    return target, flow


def run_demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flowlib import config, flows, metrics, plotting, train

    target, flow = check_demo_arguments(parser, args)
    chosen = demo_recipe(args)
    fast = args.fast or config.fast_mode()
    steps = args.steps or (DEMO_STEPS_FAST if fast else DEMO_STEPS)
    num_train, num_test = (20_000, 5_000) if fast else (100_000, 50_000)
    x_train = target.sample(num_train, seed=args.seed)
    x_test = target.sample(num_test, seed=args.seed + 1)
    print(
        f"training a flow of {chosen.num_layers} {chosen.layer} layers "
        f"({flows.num_parameters(flow):,} parameters) "
        f"on “{target.name}” for {steps} steps"
    )
    fit_kwargs = chosen.fit_kwargs()
    if fast:  # a few hundred steps: compiling with XLA would take longer than it saves
        fit_kwargs["jit_compile"] = False
    history = train.fit(
        flow, x_train, steps=steps, seed=args.seed, progress=not args.no_progress, **fit_kwargs
    )
    if history.steps == 0:
        print(
            "error: training failed before any step could be kept, so no figures were written "
            "(the message above says what to try)",
            file=sys.stderr,
        )
        return 1
    result = metrics.evaluate(flow, target, x_test)

    written = []
    fig = plotting.plot_layer_grid(flow, num_samples=args.num_samples, seed=args.seed)
    written.append(args.out / "layers.png")
    fig.savefig(written[-1], dpi=110)
    fig = plotting.plot_density(
        flow, target, resolution=120 if fast else 300, title=f"learned density (gap {result.gap:.3f} nats)"
    )
    written.append(args.out / "density.png")
    fig.savefig(written[-1], dpi=110)
    ax = plotting.plot_training_curve(history, entropy=result.entropy)
    written.append(args.out / "training.png")
    ax.figure.savefig(written[-1], dpi=110, bbox_inches="tight")
    plt.close("all")

    print(
        f"trained {history.steps} of {steps} steps in {history.seconds:.1f} s"
        + (f" ({history.rescues} rescues)" if history.rescues else "")
        + (", then stopped (see above)" if history.stopped else "")
    )
    print(result)
    for path in written:
        print(f"wrote {path}")
    return 0 if not history.stopped else 1


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ logging: errors only (its own default shows information too).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The arguments first: a mistyped flag or --help answers at once, without TensorFlow.
    parser = build_parser()
    args = parser.parse_args(argv)
    with quiet_tensorflow_startup():
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery prints the CUDA noise: do it now
        import tensorflow_probability  # noqa: F401  (its tf-keras start prints the oneDNN line again)
    if args.command == "demo":
        return run_demo(args, args.command_parser)
    return 2


if __name__ == "__main__":
    sys.exit(main())

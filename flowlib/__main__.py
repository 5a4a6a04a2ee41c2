"""Command line: ``python -m flowlib demo`` trains the headline flow and writes its figures."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
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
        message = " ".join(message.split())  # one line, whatever the message held
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


def _learning_rate(text: str) -> float:
    """A positive, finite number that float32 holds: 1e39 would be inf inside TensorFlow."""
    value = _positive_float(text)
    try:
        return validation.positive_float32(value, "value")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive number float32 can hold ({validation.FLOAT32_TINY:.2g} to {validation.FLOAT32_MAX:.2g}), got {text!r}"
        ) from None


_seed = _argument(int, validation.seed, f"an integer from 0 to {validation.MAX_SEED}")

CHECKPOINT_NAME = "flow"  # --save DIR and --load DIR hold the checkpoint DIR/flow
ARCHITECTURE = ("layer", "num_layers", "hidden_units", "normalization")  # flags a checkpoint fixes
TRAINING = ("steps", "batch_size", "learning_rate")  # flags that only matter when training
DEFAULT_TEXT, DEFAULT_SEED = "Flow", 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m flowlib", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train the headline flow on a word and write its figures",
        description="Train the headline flow of flowlib.recipe (a standard normal pushed onto points drawn "
        "from a word rendered as text), print its held-out NLL next to the entropy bound, "
        "and write figures: the layer-by-layer grid, the learned density beside the "
        "target, and the training curve. With --save DIR the trained flow is kept; with "
        "--load DIR a kept flow is shown without training.",
    )
    demo.add_argument("--text", type=_word, default=None, help=f"the word to learn (default: {DEFAULT_TEXT})")
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
        type=_learning_rate,
        default=None,
        help="Adam's peak learning rate, cosine-decayed (default: the layer's recipe, "
        f"{HEADLINE.learning_rate:g} for the headline)",
    )
    demo.add_argument(
        "--layer",
        choices=("affine", "spline", "maf"),
        default=None,
        help="kind of layer: affine coupling (RealNVP), rational-quadratic spline coupling, "
        "or MAF, each with its recipe of flowlib.recipe.RECIPES (default: "
        f"{HEADLINE.layer}, the headline)",
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
        "--seed",
        type=_seed,
        default=None,
        help=f"seed of weights, data and batches (default: {DEFAULT_SEED})",
    )
    demo.add_argument(
        "--out", type=Path, default=Path("figures"), help="folder for the figures (default: %(default)s)"
    )
    kept = demo.add_mutually_exclusive_group()
    kept.add_argument(
        "--save",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"after training, save the flow and its recipe as the checkpoint DIR/{CHECKPOINT_NAME} "
        "(flowlib.checkpoint); not when training failed",
    )
    kept.add_argument(
        "--load",
        type=Path,
        default=None,
        metavar="DIR",
        help="skip training: load the flow saved with --save DIR, built from the recipe, word and seed "
        "saved with it (flags that would change them are refused), and write its figures",
    )
    demo.add_argument(
        "--fast",
        action="store_true",
        help="a quick look: few steps, small data",
    )
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demo.set_defaults(command_parser=demo)  # for errors found after parsing (check_demo_arguments)
    return parser


def _folder_problem(folder: Path, *, try_it: bool, created: list[Path] | None = None) -> str | None:
    """Why files cannot be written into ``folder`` (None if they can).

    Without ``try_it`` only the path is looked at (nothing is created): a file there, or
    a file where a parent folder should be. With it the folder is created (the folders
    made are appended to ``created``) and a file made and removed in it: tried, not guessed.
    """
    if folder.exists() and not folder.is_dir():
        return f"{str(folder)!r} exists and is not a folder"
    for parent in folder.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{str(folder)!r} is under {str(parent)!r}, which is a file"
            break
    if try_it:
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if created is not None:
                created.extend(missing)  # deepest first: the order to remove them in
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            return f"cannot write to {str(folder)!r}: {error.strerror or error}"
    return None


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if still empty


def _check_out(out: Path) -> str | None:
    """Why figures cannot be written to the folder ``out`` (None if they can): tried, not guessed."""
    return _folder_problem(out, try_it=True)


def demo_recipe(args: argparse.Namespace, base=None):
    """The recipe of the layer kind asked for (or ``base``), with the settings the command line changed."""
    changes = dict(
        num_layers=args.num_layers,
        hidden_units=None if args.hidden_units is None else (args.hidden_units,) * 2,
        normalization=args.normalization,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
    )
    if base is None:
        base = RECIPES[args.layer or HEADLINE.layer]
    elif args.layer is not None and args.layer != base.layer:
        base = RECIPES[args.layer]
    return base.replace(**{key: value for key, value in changes.items() if value is not None})


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _saved_run(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """For ``--load DIR``: the recipe, word and seed saved with the checkpoint (read without
    TensorFlow); a flag that contradicts them ends the program."""
    from flowlib import checkpoint
    from flowlib.recipe import Recipe

    path = args.load / CHECKPOINT_NAME
    try:
        metadata = checkpoint.read_record(path)["metadata"] or {}
    except (OSError, ValueError) as error:  # FileNotFoundError, CheckpointError
        parser.error(f"argument --load: {error}")
    given = [_flag(name) for name in TRAINING if getattr(args, name) is not None]
    if given:
        parser.error(f"argument {given[0]}: not allowed with --load (loading skips training)")
    try:
        saved = Recipe(**{**metadata["recipe"], "hidden_units": tuple(metadata["recipe"]["hidden_units"])})
        text, seed = metadata["text"], metadata["seed"]
    except (KeyError, TypeError, ValueError):
        # saved by flowlib.checkpoint.save itself: the flags say how to build it, and the
        # checkpoint's build record refuses a flow built otherwise
        try:
            chosen = demo_recipe(args)
        except (TypeError, ValueError) as error:
            parser.error(str(error))
        return chosen, args.text or DEFAULT_TEXT, DEFAULT_SEED if args.seed is None else args.seed
    asked = demo_recipe(args, base=saved)
    for name in ARCHITECTURE:
        if getattr(asked, name) != getattr(saved, name):
            shown = getattr(saved, name)
            shown = shown[0] if name == "hidden_units" else shown
            parser.error(
                f"argument {_flag(name)}: the flow in {str(args.load)!r} was saved with {_flag(name)} "
                f"{shown}; leave the flag out to load it"
            )
    for flag, value, kept in (("--text", args.text, text), ("--seed", args.seed, seed)):
        if value is not None and value != kept:
            parser.error(
                f"argument {flag}: the flow in {str(args.load)!r} was trained with {flag} {kept!r}; "
                "leave the flag out to load it"
            )
    return saved, text, seed


def check_demo_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Check every argument of ``demo`` before TensorFlow starts; return what the run needs.

    Numbers were checked while parsing; here come, cheapest first, the output folder's
    path, the checkpoint of ``--save`` or ``--load`` (its record read, without
    TensorFlow), the recipe, the folders of ``--out`` and ``--save`` (created, and a file
    made and removed in each) and the word (rendered). Each problem ends the program
    through ``parser.error``: one line, exit code 2, in a second or two, and folders
    the checks created are removed again.
    """
    from flowlib import checkpoint

    problem = _folder_problem(args.out, try_it=False)
    if problem:
        parser.error(f"argument --out: {problem}")
    if args.save is not None:
        problem = _folder_problem(args.save, try_it=False)
        try:
            if problem is None:
                checkpoint.check_save_path(args.save / CHECKPOINT_NAME)
        except ValueError as error:
            problem = str(error)
        if problem:
            parser.error(f"argument --save: {problem}")
    if args.load is not None:
        chosen, text, seed = _saved_run(parser, args)
    else:
        text, seed = args.text or DEFAULT_TEXT, DEFAULT_SEED if args.seed is None else args.seed
        try:
            chosen = demo_recipe(args)
        except (TypeError, ValueError) as error:
            parser.error(str(error))

    created: list[Path] = []  # folders made by the checks, removed again if a later one fails
    for flag, folder in (("--out", args.out), ("--save", args.save)):
        problem = folder is not None and _folder_problem(folder, try_it=True, created=created)
        if problem:
            _remove_empty(created)
            parser.error(f"argument {flag}: {problem}")

    from flowlib import data  # renders with matplotlib: the slowest check comes last

    try:
        target = data.PictureDistribution.from_text(text)
    except (TypeError, ValueError) as error:
        _remove_empty(created)
        parser.error(f"argument --text: {error}")
    return argparse.Namespace(recipe=chosen, text=text, seed=seed, target=target)


# --------------------------------------------------------------------------- the run
def _verdict(history, before: float, result) -> tuple[list[str], bool]:
    """What the user must be told about a finished training run, and whether it failed.

    Failed: the held-out NLL is not finite, or no better than the untrained flow's.
    Rescues (the guard restored the weights after a non-finite loss and halved the
    learning rate) are reported even when the run recovered.
    """
    import math

    lines = []
    if history.rescues:
        lines.append(
            f"warning: training needed {history.rescues} rescue{'s' if history.rescues > 1 else ''}: "
            f"the loss became non-finite and the learning rate was halved each time, to "
            f"{history.learning_rate:.3g} in the end; a lower --learning-rate would train better"
        )
    failed = not math.isfinite(result.nll) or result.nll >= before
    if failed:
        lines.append(
            f"error: training made the flow worse, not better: held-out NLL {result.nll:.3f} nats "
            f"after training against {before:.3f} before (gap to the entropy bound {result.gap:.3f}); "
            "try a lower --learning-rate"
        )
    return lines, failed


def run_demo(args: argparse.Namespace, parser: argparse.ArgumentParser, checked: argparse.Namespace) -> int:
    """Train (or load) the flow, evaluate it and write the figures; the exit code.

    ``checked``: what :func:`check_demo_arguments` returned (before TensorFlow started).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flowlib import checkpoint, flows, metrics, plotting, train

    chosen, target, seed = checked.recipe, checked.target, checked.seed
    try:
        flow = chosen.build(seed=seed)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    fast = args.fast
    steps = args.steps or (DEMO_STEPS_FAST if fast else DEMO_STEPS)
    num_train, num_test = (20_000, 5_000) if fast else (100_000, 50_000)
    x_test = target.sample(num_test, seed=(seed + 1) % 2**31)  # seeds go up to 2**31 - 1
    history, failed = None, False
    if args.load is not None:
        try:
            checkpoint.load(flow, args.load / CHECKPOINT_NAME)
        except (OSError, ValueError) as error:
            parser.error(f"argument --load: {error}")
        print(f"loaded a flow of {chosen.num_layers} {chosen.layer} layers from {args.load} (no training)")
        result = metrics.evaluate(flow, target, x_test)
    else:
        x_train = target.sample(num_train, seed=seed)
        print(
            f"training a flow of {chosen.num_layers} {chosen.layer} layers "
            f"({flows.num_parameters(flow):,} parameters) "
            f"on “{target.name}” for {steps} steps"
        )
        before = metrics.nll(flow, x_test)
        fit_kwargs = chosen.fit_kwargs()
        if fast:  # a few hundred steps: compiling with XLA would take longer than it saves
            fit_kwargs["jit_compile"] = False
        history = train.fit(
            flow, x_train, steps=steps, seed=seed, progress=not args.no_progress, **fit_kwargs
        )
        if history.steps == 0:
            print(
                "error: training failed before any step could be kept, so no figures were written "
                "(the message above says what to try)",
                file=sys.stderr,
            )
            return 1
        result = metrics.evaluate(flow, target, x_test)
        lines, failed = _verdict(history, before, result)
        failed = failed or history.stopped

    written = []
    fig = plotting.plot_layer_grid(flow, num_samples=args.num_samples, seed=seed)
    written.append(plotting.save_figure(fig, args.out / "layers.png", dpi=110))
    fig = plotting.plot_density(
        flow, target, resolution=120 if fast else 300, title=f"learned density (gap {result.gap:.3f} nats)"
    )
    written.append(plotting.save_figure(fig, args.out / "density.png", dpi=110))
    if history is not None:
        ax = plotting.plot_training_curve(history, entropy=result.entropy)
        written.append(
            plotting.save_figure(ax.figure, args.out / "training.png", dpi=110, bbox_inches="tight")
        )
    plt.close("all")

    if history is not None:
        print(
            f"trained {history.steps} of {steps} steps in {history.seconds:.1f} s"
            + (f" ({history.rescues} rescues)" if history.rescues else "")
            + (", then stopped (see above)" if history.stopped else "")
        )
    print(result)
    for path in written:
        print(f"wrote {path}")
    if history is not None:
        for line in lines:
            print(line, file=sys.stderr)
    if args.save is not None:
        if failed:
            print(f"error: the flow was not saved to {args.save}: training failed", file=sys.stderr)
        else:
            metadata = {
                "program": "python -m flowlib demo",
                "recipe": dataclasses.asdict(chosen),
                "text": checked.text,
                "seed": seed,
                "steps": history.steps,
            }
            checkpoint.save(flow, args.save / CHECKPOINT_NAME, metadata=metadata)
            print(f"saved the flow to {args.save} (show it again with --load {args.save})")
    return 1 if failed else 0


def _start_tensorflow() -> None:
    """Import TensorFlow (and TFP) with its start-up noise filtered."""
    with quiet_tensorflow_startup():
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery prints the CUDA noise: do it now
        import tensorflow_probability  # noqa: F401  (its tf-keras start prints the oneDNN line again)


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ logging: errors only (its own default shows information too).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The arguments first: a mistyped flag, --help or a bad value answers at once, without TensorFlow.
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "demo":
        return 2
    checked = check_demo_arguments(args.command_parser, args)
    _start_tensorflow()
    return run_demo(args, args.command_parser, checked)


if __name__ == "__main__":
    sys.exit(main())

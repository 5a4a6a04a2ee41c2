"""Peers: flowlib's headline flow against zuko and normflows, same data, same protocol.

The protocol is bench/quality.py's: the word "Flow" (100,000 training points, 50,000
held out, the same seeds), batches of 256 drawn with replacement, Adam with a cosine decay
that reaches zero when the wall-clock budget is spent (the budget counts from the first
step, compilation included), then the held-out NLL, the entropy bound and their gap (an
estimate of KL(target || model)). Every run is a fresh process, one at a time, so that
TensorFlow and PyTorch never share a process and each row's memory and threads are its
own; every row is printed with the load average at its start and end.

The peers, each with its own published recipe (architecture and Adam's learning rate;
the batch and the schedule are the protocol's):

- zuko ``NSF``: ``zuko.flows.NSF(features=2, transforms=3, hidden_features=(64, 64))``,
  Adam at 1e-3, from zuko's tutorial ``docs/tutorials/forward_kl.ipynb`` (probabilists/zuko
  at 1063ae4);
- zuko ``RealNVP`` at flowlib's headline shape (12 affine couplings of (64, 64)), Adam
  at 1e-3 (the same tutorial's optimiser);
- normflows RealNVP from its README (32 ``AffineCouplingBlock`` of ``MLP([1, 64, 64, 2],
  init_zeros=True)`` with swaps), Adam at 1e-3 with weight decay 1e-5 (the optimiser of
  normflows' examples; the README names none);
- normflows' neural spline flow, ``examples/neural_spline_flow.ipynb``
  (VincentStimper/normalizing-flows at c6616b1: ``AutoregressiveRationalQuadraticSpline``
  + ``LULinearPermute``, 2 hidden layers of 128, Adam 1e-3, weight decay 1e-5) with 8
  layers instead of its 16, so that it trains at a usable rate on a CPU;
- and the two spline peers at flowlib's own recipe (``flowlib.recipe.HEADLINE``: 4 layers,
  32 bins, (64, 64), Adam at 2e-3, read when the bench runs): zuko's ``NSF`` with those
  transforms, bins and hidden features, and normflows' ``CoupledRationalQuadraticSpline``
  couplings (the headline's bins, linear tails beyond the headline's bound 4, a 64-wide residual network
  with one block) with swaps between them, as the headline has. Part of a lead over a peer at
  its own settings is tuning a reader could copy; these rows measure the rest.

PyTorch on a 2-core machine: ``OMP_WAIT_POLICY=PASSIVE`` is set (with OpenMP's default
spin-waiting a busy neighbour can slow a step by an order of magnitude), and in each
peer's process, before its run on "Flow", a throw-away copy of the model is trained for a
few seconds with 1, 2, 1 and 2 threads; the run (and the peer's later runs) use whichever
gave more steps per second (printed). flowlib runs with TensorFlow's default thread pools.

Columns: ``1st`` is the time before the steady rate (flowlib: compiling the training step,
estimated as in quality.py; torch: the first step), ``nan`` the non-finite losses met
(flowlib's rescues; a peer skips the step). After "Flow", on which the headline was chosen,
the headline and the four spline rows (each spline peer at its own recipe and at flowlib's)
run on targets the headline was not chosen on: words of 3, 5, 8 and 10 letters and one image
(a heart drawn with numpy, as in notebook 03). Each target ends with the headline's gap as a
multiple of the best peer row's. If flowlib has a spline coupling flow, its steps per second
are also measured against zuko's NSF at equal shape (3 transforms, (64, 64) networks, 8 bins).

Needs the optional extra: ``pip install -e ".[peers]"`` (on a CPU-only machine install a
CPU build of torch first, e.g. from https://download.pytorch.org/whl/cpu, or pip fetches
the multi-GB CUDA build). The workers run with ``--python`` (default:
``$FLOWLIB_PEERS_PYTHON``, else ``.venv-peers/bin/python`` if it exists, else this
interpreter). Results: ``bench/results/peers.txt``.

    .venv-peers/bin/python bench/peers.py                     # about 45 minutes on 2 cores
    .venv-peers/bin/python bench/peers.py --budget 20 --no-other-targets --no-record  # a quick look
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _common  # noqa: E402  (sets the log level and sys.path)

NUM_TRAIN, NUM_TEST, BATCH_SIZE = 100_000, 50_000, 256
RATE_STEPS = 400  # steps of each run that only measures the spline step's rate
TORCH_PEERS = (
    "zuko_nsf",
    "zuko_realnvp",
    "normflows_realnvp",
    "normflows_spline",
    "zuko_nsf_recipe",
    "normflows_spline_recipe",
)
# The peers that have spline layers, at flowlib's headline shape and rate (flowlib.recipe.HEADLINE:
# its layers, bins, interval, hidden units and peak learning rate, read in the driver).
RECIPE_PEERS = ("zuko_nsf_recipe", "normflows_spline_recipe")
LABELS = {
    "flowlib": "flowlib headline",
    "zuko_nsf": "zuko NSF (tutorial: 3 transforms, (64, 64))",
    "zuko_realnvp": "zuko RealNVP (12 couplings, (64, 64))",
    "normflows_realnvp": "normflows RealNVP (README: 32 couplings)",
    "normflows_spline": "normflows NSF (8 AR splines + LU, 128x2)",
    "flowlib_spline_equal": "flowlib spline coupling (3, (64, 64), 8 bins)",
    "flowlib_spline_equal_xla": "flowlib spline coupling, same, fit(jit_compile=True)",
    "zuko_nsf_equal": "zuko NSF (3, (64, 64), 8 bins)",
    "zuko_nsf_recipe": "zuko NSF at flowlib's recipe",
    "normflows_spline_recipe": "normflows RQ coupling at flowlib's recipe",
}
# Targets the headline was not chosen on (it was chosen on "Flow"): words of 3 to 10 letters and
# one picture, each run with the headline and every spline peer, at their own recipes and at flowlib's.
OTHER_TARGETS = ("Ada", "Gauss", "Jacobian", "Likelihood", "image:heart")
OTHER_MODELS = ("flowlib", "zuko_nsf", "normflows_spline", "zuko_nsf_recipe", "normflows_spline_recipe")


# --------------------------------------------------------------------------- the targets
def target_and_data(name: str):
    """``(target, x_train, x_test)``: the same points in every process (seeds 0 and 1)."""
    import numpy as np

    from flowlib.data import PictureDistribution

    if name == "image:heart":  # notebook 03's heart, (u^2 + v^2 - 1)^3 <= u^2 v^3, drawn with numpy
        u, v = np.meshgrid(np.linspace(-1.5, 1.5, 241), np.linspace(1.5, -1.5, 241))
        grey = np.where((u**2 + v**2 - 1) ** 3 - u**2 * v**3 <= 0, 0.0, 1.0)
        target = PictureDistribution.from_image(grey, name="heart")
    else:
        target = PictureDistribution.from_text(name)
    return target, target.sample(NUM_TRAIN, seed=0), target.sample(NUM_TEST, seed=1)


# --------------------------------------------------------------------------- flowlib workers
class _SplineAtNsfShape:
    """flowlib's spline coupling flow at zuko NSF's tutorial shape: 3 layers, (64, 64), 8 bins."""

    batch_size, learning_rate, schedule = BATCH_SIZE, 1e-3, "cosine"

    def label(self) -> str:
        return "3 spline couplings, (64, 64), 8 bins, Adam 1e-3"

    def build(self, seed: int):
        from flowlib import flows

        return flows.spline_flow(num_layers=3, hidden_units=(64, 64), num_bins=8, seed=seed)


def _flowlib_run(model: str, target_name: str, budget: float, evaluate: bool, threads: int | None) -> dict:
    import _budget

    if threads:  # else TensorFlow's defaults (a pool as wide as the machine)
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)

    target, x_train, x_test = target_and_data(target_name)
    _budget.warm_up(x_train)  # imports and first traces of TFP, outside the budget (as in quality.py)
    if model.startswith(
        "flowlib_spline_equal"
    ):  # the step rate only: a fixed number of steps, whatever the load
        from flowlib import flows, train

        config = _SplineAtNsfShape()
        flow = config.build(0)
        history = train.fit(
            flow,
            x_train,
            steps=RATE_STEPS,
            steps_per_call=50,
            batch_size=BATCH_SIZE,
            learning_rate=config.learning_rate,
            seed=0,
            progress=False,
            jit_compile=model.endswith("_xla"),
        )
        times = history.times
        rate = 50 * (len(times) - 1) / (times[-1] - times[0])
        return dict(
            steps=history.steps,
            seconds=history.seconds,
            rate=rate,
            first=times[0] - 50 / rate,
            nonfinite=history.rescues,
            params=flows.num_parameters(flow),
            recipe=config.label(),
            threads=str(threads) if threads else "TF default",
        )
    config = _budget.headline()  # a flowlib.recipe.Recipe: build(seed=...) builds in 2-D
    result, flow, _ = _budget.train_for_budget(
        config, budget, target, x_train, x_test if evaluate else x_test[:256], seed=0, return_flow=True
    )
    from flowlib import flows

    out = dict(
        steps=result.steps,
        seconds=result.seconds,
        rate=result.rate,
        first=result.fixed_seconds,
        nonfinite=result.rescues,
        params=flows.num_parameters(flow),
        recipe=config.label().strip(),
        threads=str(threads) if threads else "TF default",
    )
    if evaluate:
        out.update(nll=result.nll, gap=result.gap, se=result.standard_error)
    return out


# --------------------------------------------------------------------------- torch workers
def _torch_model(model: str, recipe: dict | None = None):
    """The peer's model and its optimiser settings (learning rate, weight decay).

    ``recipe``: flowlib's headline shape and rate (``num_layers``, ``num_bins``, ``bound``,
    ``hidden_units``, ``learning_rate``), for the ``*_recipe`` peers.
    """
    if model == "zuko_nsf_recipe":  # zuko's NSF (autoregressive splines; in 2-D one coordinate
        import zuko  # conditions the other, alternating, as a coupling does)

        flow = zuko.flows.NSF(
            features=2,
            transforms=recipe["num_layers"],
            hidden_features=tuple(recipe["hidden_units"]),
            bins=recipe["num_bins"],
        )
        return (lambda x: flow().log_prob(x)), flow, recipe["learning_rate"], 0.0
    if model == "normflows_spline_recipe":  # coupling splines with swaps, as flowlib's headline
        import normflows as nf

        if len(set(recipe["hidden_units"])) != 1:
            raise ValueError("normflows' residual network has one width: the recipe's differ")
        layers = []
        for _ in range(recipe["num_layers"]):
            layers.append(
                nf.flows.CoupledRationalQuadraticSpline(
                    2,
                    num_blocks=1,  # one residual block of the recipe's width (flowlib: 2 layers)
                    num_hidden_channels=recipe["hidden_units"][0],
                    num_bins=recipe["num_bins"],
                    tail_bound=recipe["bound"],
                )
            )
            layers.append(nf.flows.Permute(2, mode="swap"))
        flow = nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False), layers)
        return flow.log_prob, flow, recipe["learning_rate"], 0.0
    if model in ("zuko_nsf", "zuko_nsf_equal"):
        import zuko

        flow = zuko.flows.NSF(features=2, transforms=3, hidden_features=(64, 64), bins=8)
        return (lambda x: flow().log_prob(x)), flow, 1e-3, 0.0
    if model == "zuko_realnvp":
        import zuko

        flow = zuko.flows.RealNVP(features=2, transforms=12, hidden_features=(64, 64))
        return (lambda x: flow().log_prob(x)), flow, 1e-3, 0.0
    if model == "normflows_realnvp":
        import normflows as nf

        layers = []
        for _ in range(32):
            layers.append(nf.flows.AffineCouplingBlock(nf.nets.MLP([1, 64, 64, 2], init_zeros=True)))
            layers.append(nf.flows.Permute(2, mode="swap"))
        flow = nf.NormalizingFlow(nf.distributions.base.DiagGaussian(2), layers)
        return flow.log_prob, flow, 1e-3, 1e-5
    if model == "normflows_spline":
        import normflows as nf

        layers = []
        for _ in range(8):
            layers.append(nf.flows.AutoregressiveRationalQuadraticSpline(2, 2, 128))
            layers.append(nf.flows.LULinearPermute(2))
        flow = nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False), layers)
        return flow.log_prob, flow, 1e-3, 1e-5
    raise ValueError(f"unknown model {model!r}")


def _torch_run(
    model: str,
    target_name: str,
    budget: float,
    evaluate: bool,
    threads: int,
    max_steps: int | None = None,
    recipe: dict | None = None,
) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    target, x_train, x_test = target_and_data(target_name)
    log_prob, module, peak_lr, weight_decay = _torch_model(model, recipe)
    optimizer = torch.optim.Adam(module.parameters(), lr=peak_lr, weight_decay=weight_decay)
    data = torch.from_numpy(x_train)
    generator = torch.Generator().manual_seed(0)
    module.train()
    steps, nonfinite, times = 0, 0, []
    start = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= budget or (max_steps is not None and steps >= max_steps):
            break
        for (
            group
        ) in optimizer.param_groups:  # cosine decay over the time budget, as fit(schedule_by_time=True)
            group["lr"] = peak_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, elapsed / budget)))
        batch = data[torch.randint(len(data), (BATCH_SIZE,), generator=generator)]
        loss = -log_prob(batch).mean()
        optimizer.zero_grad()
        if torch.isfinite(loss):
            loss.backward()
            optimizer.step()
        else:
            nonfinite += 1
        steps += 1
        times.append(time.perf_counter() - start)
    seconds = time.perf_counter() - start
    first = times[0] if times else float("nan")
    skip = min(20, len(times) // 4)  # the first steps warm up allocators and caches
    rate = (len(times) - 1 - skip) / (times[-1] - times[skip]) if len(times) > skip + 1 else float("nan")
    out = dict(
        steps=steps,
        seconds=seconds,
        rate=rate,
        first=first,
        nonfinite=nonfinite,
        threads=str(threads),
        params=int(sum(p.numel() for p in module.parameters())),
        recipe=f"Adam {peak_lr:g}" + (f", weight decay {weight_decay:g}" if weight_decay else ""),
    )
    if evaluate:
        module.eval()
        with torch.no_grad():
            values = np.concatenate(
                [
                    -log_prob(torch.from_numpy(x_test[i : i + 8192])).numpy()
                    for i in range(0, len(x_test), 8192)
                ]
            ).astype(np.float64)
        values[~np.isfinite(values)] = np.inf
        nll = float(values.mean())
        out.update(
            nll=nll,
            gap=nll - target.entropy(),
            se=float(values.std(ddof=1) / np.sqrt(len(values))) if np.isfinite(nll) else float("nan"),
        )
    return out


def _torch_probe(model: str, seconds: float, recipe: dict | None = None) -> dict:
    """Steps per second of one peer with 1 and with 2 threads, alternating (1, 2, 1, 2), best of each."""
    import torch

    torch.manual_seed(0)
    _, x_train, _ = target_and_data("Flow")
    log_prob, module, peak_lr, weight_decay = _torch_model(model, recipe)
    optimizer = torch.optim.Adam(module.parameters(), lr=peak_lr, weight_decay=weight_decay)
    data = torch.from_numpy(x_train)
    generator = torch.Generator().manual_seed(0)
    rates: dict[int, float] = {1: 0.0, 2: 0.0}
    for threads in (1, 2, 1, 2):
        torch.set_num_threads(threads)
        steps, start = 0, None
        while start is None or time.perf_counter() - start < seconds:
            if steps == 5:  # the first steps after a change of threads warm up
                start = time.perf_counter()
            batch = data[torch.randint(len(data), (BATCH_SIZE,), generator=generator)]
            loss = -log_prob(batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
        rates[threads] = max(rates[threads], (steps - 5) / (time.perf_counter() - start))
    return dict(rates=rates)


def worker(spec: dict) -> None:
    if spec["model"].startswith("flowlib"):
        result = _flowlib_run(
            spec["model"], spec["target"], spec["budget"], spec["evaluate"], spec.get("threads")
        )
    else:
        # bench/profile.py would shadow the standard library's profile module, which torch imports
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
        rates = None
        if spec.get("probe"):  # choose the thread count on a throw-away copy of the model first
            rates = _torch_probe(spec["model"], spec["probe"], spec.get("recipe"))["rates"]
            spec["threads"] = max(rates, key=lambda t: rates[t])
        max_steps = RATE_STEPS if spec["model"] == "zuko_nsf_equal" else None  # the step rate only
        result = _torch_run(
            spec["model"],
            spec["target"],
            spec["budget"],
            spec["evaluate"],
            spec["threads"],
            max_steps,
            spec.get("recipe"),
        )
        result["rates"] = rates
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- the driver
def headline_recipe() -> dict:
    """flowlib's headline shape and rate (flowlib.recipe.HEADLINE), for the ``*_recipe`` peers."""
    from flowlib.recipe import HEADLINE  # no TensorFlow: the command line reads it first too

    if HEADLINE.layer != "spline":
        raise ValueError(f"the recipe peers copy a spline headline; this one is {HEADLINE.layer!r}")
    return dict(
        num_layers=HEADLINE.num_layers,
        num_bins=HEADLINE.num_bins,
        bound=HEADLINE.bound,
        hidden_units=list(HEADLINE.hidden_units),
        learning_rate=HEADLINE.learning_rate,
    )


def default_python() -> str:
    if os.environ.get("FLOWLIB_PEERS_PYTHON"):
        return os.environ["FLOWLIB_PEERS_PYTHON"]
    candidate = ROOT / ".venv-peers" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def run(
    python: str,
    model: str,
    target: str,
    budget: float,
    *,
    evaluate: bool = True,
    threads: int = 1,
    probe: float = 0.0,
) -> dict:
    """One run in a fresh process; returns its figures with the load before and after.

    ``threads``: torch's thread count; for flowlib 0 keeps TensorFlow's default pools.
    """
    spec = dict(model=model, target=target, budget=budget, evaluate=evaluate, threads=threads, probe=probe)
    if model in RECIPE_PEERS:
        spec["recipe"] = headline_recipe()
    env = dict(
        os.environ,
        OMP_WAIT_POLICY="PASSIVE",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    if model in ("flowlib", "flowlib_spline_equal"):  # TensorFlow's own defaults
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.pop(name)
    load_before = _common.load()
    started = time.perf_counter()
    process = subprocess.run(
        [python, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    if process.returncode != 0 or not lines:
        tail = "\n".join(process.stderr.strip().splitlines()[-5:])
        return dict(
            error=f"exit {process.returncode}: {tail}", load_before=load_before, load_after=_common.load()
        )
    result = json.loads(lines[-1][len("RESULT ") :])
    result.update(load_before=load_before, load_after=_common.load(), wall=time.perf_counter() - started)
    return result


def row(target: str, model: str, result: dict) -> str:
    label = LABELS[model]
    if "error" in result:
        return f"{target:<7} {label:<46} FAILED {result['error']}"
    gap = f"{result['gap']:7.3f} {result['se']:6.3f}" if "gap" in result else f"{'':7} {'':6}"
    return (
        f"{target:<7} {label:<46} {result['threads']:>10} {result['params']:>7,d} {result['steps']:>6d} "
        f"{result['seconds']:6.1f} {result['first']:6.1f} {result['rate']:7.1f} {gap} "
        f"{result['nonfinite']:>4d}  "
        f"{result['load_before']} -> {result['load_after'][5:]}"
    )


HEADER = (
    f"{'target':<7} {'model':<46} {'threads':>10} {'params':>7} {'steps':>6} {'secs':>6} {'1st':>6} "
    f"{'steps/s':>7} "
    f"{'gap':>7} {'± s.e.':>6} {'nan':>4}  load (1, 5, 15 min) at start -> end"
)


def verdict(target: str, results: dict[str, list[dict]]) -> str:
    """One line: the headline's gap against the best of every peer row on ``target``."""

    def gap(model):
        values = [r["gap"] for r in results.get(model, []) if "gap" in r and math.isfinite(r["gap"])]
        return min(values) if values else math.inf

    peers = [model for model in results if model != "flowlib"]
    if not peers:
        return f"{target}: no peer ran"
    best = min(peers, key=gap)
    headline = gap("flowlib")
    return (
        f"{target}: headline gap {headline:.3f}, best peer row {LABELS[best]} {gap(best):.3f}: "
        f"{headline / gap(best):.2f} x"
    )


def has_spline(python: str) -> bool:
    code = "import sys; from flowlib import flows; sys.exit(not hasattr(flows, 'spline_flow'))"
    return subprocess.run([python, "-c", code], cwd=ROOT, capture_output=True).returncode == 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of training per run (default 60)")
    parser.add_argument("--probe", type=float, default=4.0, help="seconds per thread-count probe (default 4)")
    parser.add_argument("--python", default=None, help="interpreter with torch, zuko, normflows and flowlib")
    parser.add_argument("--no-other-targets", action="store_true", help="only 'Flow'")
    parser.add_argument(
        "--spline-step-only",
        action="store_true",
        help="only the spline coupling step against zuko's NSF (recorded as peers_spline_step.txt)",
    )
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    python = args.python or default_python()
    missing = subprocess.run(  # find the packages without importing them (TensorFlow takes a while)
        [
            python,
            "-c",
            "import importlib.util, sys; "
            "sys.exit(any(importlib.util.find_spec(m) is None for m in "
            "('torch', 'zuko', 'normflows', 'tensorflow', 'flowlib')))",
        ],
        capture_output=True,
    ).returncode
    if missing:
        print(
            f"peers: skipped: {python} cannot import torch, zuko, normflows, tensorflow and flowlib; "
            f'install them with pip install -e ".[peers]" (a CPU build of torch first), '
            f"or point --python / FLOWLIB_PEERS_PYTHON at such an interpreter"
        )
        return 0

    with _common.recorded(
        "peers_spline_step" if args.spline_step_only else "peers", enabled=not args.no_record
    ):
        start = time.perf_counter()
        # The header of _common.header, without importing TensorFlow here (minutes on a loaded machine):
        # the versions come from the workers' interpreter's package metadata.
        versions = subprocess.run(
            [
                python,
                "-c",
                "from importlib.metadata import version as v; import platform; "
                'print(f\'python {platform.python_version()} | TF {v("tensorflow")} | '
                'TFP {v("tensorflow-probability")} | torch {v("torch")} | zuko {v("zuko")} | '
                'normflows {v("normflows")} | numpy {v("numpy")}\')',
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()
        print("# peers: flowlib's headline flow, zuko and normflows; same points, budget, batch, schedule")
        print(
            f"# {datetime.datetime.now().isoformat(timespec='seconds')} | {os.cpu_count()} CPUs | {versions}"
        )
        print(f"# {_common.load()} at the start")
        print(
            f"# OMP_WAIT_POLICY=PASSIVE for torch | {args.budget:g} s per run, batch {BATCH_SIZE}, "
            f"cosine decay over the budget, {NUM_TRAIN:,} training / {NUM_TEST:,} held-out points"
        )

        order = ["flowlib", *TORCH_PEERS]
        if args.spline_step_only:
            order = []
        else:
            print(f"\n## 'Flow', {args.budget:g} s each, one process at a time\n{HEADER}")
        results: dict[str, list[dict]] = {}
        best_threads: dict[str, int] = {}
        probes: list[str] = []
        for model in order:
            probe = args.probe if model in TORCH_PEERS else 0.0
            # torch peers start their process with 2 threads allowed and keep the better count
            result = run(python, model, "Flow", args.budget, threads=2 if probe else 0, probe=probe)
            results.setdefault(model, []).append(result)
            print(row("Flow", model, result), flush=True)
            if result.get("rates"):
                best_threads[model] = int(result["threads"])
                probes.append(
                    f"#   {LABELS[model]:<46} 1 thread: {result['rates']['1']:6.1f} steps/s, "
                    f"2 threads: {result['rates']['2']:6.1f} steps/s -> {result['threads']}"
                )
        if order:
            print(
                f"# torch's threads, chosen per peer in the same process before its run ({args.probe:g} s "
                "probes on a throw-away copy of the model, threads 1, 2, 1, 2, best of each; "
                "OMP_WAIT_POLICY=PASSIVE):"
            )
            print("\n".join(probes))

            def gap(model):
                values = [r["gap"] for r in results[model] if "gap" in r and math.isfinite(r["gap"])]
                return min(values) if values else math.inf

            print("# " + verdict("Flow", results))

        print(
            "\n## the spline coupling step against zuko's NSF at equal shape "
            f"(steps/s after the first call, {RATE_STEPS} steps each, interleaved)"
        )
        if has_spline(python):
            rates = {}
            for model in (
                "zuko_nsf_equal",
                "flowlib_spline_equal",
                "flowlib_spline_equal_xla",
                "zuko_nsf_equal",
            ):
                threads = (
                    best_threads.get("zuko_nsf", 1) if model == "zuko_nsf_equal" else 0
                )  # 0: TF's defaults
                result = run(python, model, "Flow", 1e9, evaluate=False, threads=threads)  # RATE_STEPS
                rates.setdefault(model, []).append(result.get("rate", float("nan")))
                print(row("Flow", model, result), flush=True)
            zuko_rate = max([r for r in rates["zuko_nsf_equal"] if math.isfinite(r)], default=math.nan)
            for model, how in (("flowlib_spline_equal", "plain"), ("flowlib_spline_equal_xla", "XLA")):
                flowlib_rate = max([r for r in rates[model] if math.isfinite(r)], default=math.nan)
                print(
                    f"# spline coupling step ({how}): {flowlib_rate:.1f} steps/s against zuko NSF's "
                    f"{zuko_rate:.1f} (eager PyTorch, its documented use; the better of its two runs): "
                    f"{flowlib_rate / zuko_rate:.2f}x"
                )
        else:
            print("# skipped: this flowlib has no spline coupling flow (flows.spline_flow)")
        if order and not args.no_other_targets:
            print(
                "\n## targets the headline was not chosen on: the headline and the spline peers, at their "
                f"own recipes and at flowlib's, one process at a time\n{HEADER}"
            )
            verdicts = []
            for target in OTHER_TARGETS:
                name = target.replace("image:", "")
                per_target: dict[str, list[dict]] = {}
                for model in OTHER_MODELS:
                    result = run(python, model, target, args.budget, threads=best_threads.get(model, 0))
                    per_target.setdefault(model, []).append(result)
                    print(row(name, model, result), flush=True)
                verdicts.append(verdict(name, per_target))
            print("\n".join(f"# {line}" for line in verdicts))

        print(
            f"\n# {_common.load()} at the end; "
            f"the whole run took {(time.perf_counter() - start) / 60:.1f} min"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

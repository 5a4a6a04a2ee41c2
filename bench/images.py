"""Notebook 09's image flow: held-out bits/dim, time, memory, and non-finite losses over seeds.

Trains the recipe of notebook 09 (``RECIPE`` below: RealNVP's multi-scale architecture
with two scales and convolutional coupling networks on scikit-learn's 8x8 digits, 20
dequantization noises per training image) and prints, for each run, the test bits per
dimension (5 dequantization noises), the training time (wall and CPU seconds), the
guard's rescues (a non-finite loss or non-finite weights) and the peak resident memory
of the process. ``--compare`` also trains the dense coupling networks, for the same
number of steps and for three times as many (about the same CPU time as the
convolutional run), which is the comparison quoted in the notebook.

Nothing is asserted: it prints figures, with the load average (the machine is shared).

    .venv/bin/python bench/images.py --seeds 10            # stability: the recipe with seeds 0..9
    .venv/bin/python bench/images.py --seeds 1 --compare   # conv against dense

On a busy machine, split the seeds over processes (``--first-seed 5 --seeds 5 --name images_b``).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import header, load, recorded  # noqa: E402

# The recipe of notebooks/09_images_bits_per_dimension.py, section 7 (keep the two in step;
# tests/test_notebooks.py checks it). Until 2026-12-03 it was 1000 (later 700) steps of
# batch 128 at 1e-3; bench/results/images.txt was measured with 1000.
RECIPE = dict(
    network="conv",
    hidden=32,
    num_scales=2,
    steps=400,
    batch_size=64,
    learning_rate=3e-3,
    copies=20,
    alpha=0.05,
)


def run(seed: int, *, network: str, hidden: int, steps: int, split) -> dict:
    import numpy as np

    from flowlib import images, train

    recipe = dict(RECIPE, network=network, hidden=hidden, steps=steps)
    levels, dims = split.num_levels, split.train.shape[1]
    parts = images.multiscale_flow(
        *split.shape, num_scales=recipe["num_scales"], network=network, hidden=hidden, seed=seed
    )
    logit = images.Logit(recipe["alpha"])
    z_train = logit.inverse(
        images.dequantize(split.train, levels, seed=seed + 1, copies=recipe["copies"])
    ).numpy()
    wall, cpu = time.perf_counter(), time.process_time()
    history = train.fit(
        parts.flow,
        z_train,
        steps=steps,
        batch_size=recipe["batch_size"],
        learning_rate=recipe["learning_rate"],
        seed=seed,
        progress=False,
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    model = images.with_preprocessing(parts.flow, recipe["alpha"])
    nll = [
        -model.log_prob(images.dequantize(split.test, levels, seed=100 + s)).numpy().mean() for s in range(5)
    ]
    finite_losses = bool(np.all(np.isfinite(history.loss)))
    return dict(
        bits=images.bits_per_dim(float(np.mean(nll)), dims, levels),
        wall=wall,
        cpu=cpu,
        rescues=history.rescues,
        stopped=history.stopped,
        finite=finite_losses and history.rescues == 0,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds of the recipe (default: %(default)s)")
    parser.add_argument("--compare", action="store_true", help="also train dense coupling networks (seed 0)")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds run from this one (default: %(default)s)"
    )
    parser.add_argument(
        "--steps", type=int, default=RECIPE["steps"], help="training steps (default: %(default)s)"
    )
    parser.add_argument(
        "--name", default="images", help="results file bench/results/<name>.txt (default: %(default)s)"
    )
    parser.add_argument(
        "--no-save", action="store_true", help="print only, do not write bench/results/images.txt"
    )
    args = parser.parse_args(argv)

    with recorded(args.name, enabled=not args.no_save):
        header("notebook 09's image flow: test bits/dim, time, memory, non-finite losses")
        from flowlib import images

        split = images.load_digits()
        print(
            f"# recipe {RECIPE} (steps {args.steps}); digits split "
            f"{len(split.train)}/{len(split.validation)}/{len(split.test)}; log2(17) = {math.log2(17):.3f}"
        )
        print(f"{'run':<22}{'bits/dim':>9}{'wall s':>8}{'cpu s':>8}{'rescues':>8}  load")
        runs = [
            ("conv", 32, args.steps, seed) for seed in range(args.first_seed, args.first_seed + args.seeds)
        ]
        if args.compare:
            runs += [("dense", 128, args.steps, 0), ("dense", 128, 3 * args.steps, 0)]
        results = []
        for network, hidden, steps, seed in runs:
            result = run(seed, network=network, hidden=hidden, steps=steps, split=split)
            results.append((network, result))
            label = f"{network}{hidden} {steps} s{seed}"
            print(
                f"{label:<22}{result['bits']:>9.3f}{result['wall']:>8.1f}{result['cpu']:>8.1f}"
                f"{result['rescues']:>8}  {load()}",
                flush=True,
            )
        conv = [r for network, r in results if network == "conv"]
        bits = [r["bits"] for r in conv]
        print(
            f"# conv recipe over {len(conv)} seed(s): bits/dim mean {sum(bits) / len(bits):.3f}, "
            f"min {min(bits):.3f}, max {max(bits):.3f}; runs with a non-finite loss or a rescue: "
            f"{sum(not r['finite'] for r in conv)}; stops: {sum(r['stopped'] for r in conv)}"
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"# peak resident memory of this process: {peak:.0f} MB; {load()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())

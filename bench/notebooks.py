"""Wall time and peak memory of every notebook (fast and full mode) and of the demo.

Each notebook ``notebooks/[0-9][0-9]_*.ipynb`` is executed with nbclient (what
``jupyter nbconvert --execute`` uses) in a temporary copy of the ``notebooks/`` folder:
the committed notebooks, ``notebooks/media/`` and ``checkpoints/`` are never touched,
and a full run never loads a checkpoint a previous run left behind, so it measures
what a reader's first run costs. The executed copy is thrown away.

- time: wall-clock seconds of the execution, kernel start-up included;
- memory: the peak resident set size (RSS) of the kernel process and its children,
  sampled every 0.2 s with psutil (which Jupyter's kernel already depends on), in MiB.

The demo (``python -m flowlib demo``, writing its figures to a temporary folder) is
measured the same way, in fast and full mode. Targets: a minute per notebook in either mode
(issue 23 asks it of the full mode, on 2 cores), everything under 2 GB resident.

    .venv/bin/python bench/notebooks.py                   # all notebooks, both modes, and the demo
    .venv/bin/python bench/notebooks.py --modes fast 01 05   # only some
    .venv/bin/python bench/notebooks.py --no-demo --name notebooks_08_09 08 09   # into another file
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _common

NOTEBOOKS = _common.ROOT / "notebooks"
LIMIT_MIB = 2048
LIMIT_SECONDS = {"fast": 60, "full": 60}


class PeakMemory:
    """Polls the resident memory of this process's descendants (or of one process tree)."""

    def __init__(self, root_pid: int | None = None, interval: float = 0.2):
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(root_pid or os.getpid())
        self.include_root = root_pid is not None
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _sample(self) -> int:
        total = 0
        try:
            processes = self.root.children(recursive=True) + ([self.root] if self.include_root else [])
        except self._psutil.Error:
            return 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except self._psutil.Error:
                pass
        return total

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return self.peak / 2**20


def set_mode(fast: bool) -> None:
    """Environment of the next kernel or demo process (they inherit ours): the test harness's
    fast mode (tests/harness/fast_mode.py, through tools/harness.py) on or off."""
    if str(_common.ROOT) not in sys.path:
        sys.path.insert(0, str(_common.ROOT))
    from tools import harness

    os.environ.update(harness.kernel_environment(fast=fast))
    os.environ.pop("CI", None)  # the harness refuses a full run under CI=true
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend, as in Jupyter; the demo uses Agg


def run_notebook(path: Path, fast: bool, workdir: Path) -> tuple[float, float, str]:
    """Execute a copy of ``path`` in ``workdir``; return (seconds, peak MiB, status)."""
    import nbformat
    from nbclient import NotebookClient

    set_mode(fast)
    notebook = nbformat.read(workdir / path.name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",  # seconds per cell
        resources={"metadata": {"path": str(workdir)}},
    )
    status = "ok"
    start = time.perf_counter()
    with PeakMemory() as memory:
        try:
            client.execute()
        except Exception as error:  # report and go on with the next notebook
            status = f"FAILED: {type(error).__name__}: {str(error).strip().splitlines()[-1][:120]}"
    return time.perf_counter() - start, memory.peak_mib, status


def run_demo(fast: bool) -> tuple[float, float, str]:
    set_mode(fast)
    out = tempfile.mkdtemp(prefix="demo_")
    command = [
        sys.executable,
        "-m",
        "flowlib",
        "demo",
        "--out",
        out,
        "--no-progress",
        *(["--fast"] if fast else []),
    ]
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=_common.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    with PeakMemory(process.pid) as memory:
        output, _ = process.communicate()
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    gap = [line for line in output.splitlines() if "gap" in line]
    status = "ok" if process.returncode == 0 else f"FAILED (exit {process.returncode})"
    return seconds, memory.peak_mib, status + (f"; {gap[-1].strip()}" if gap else "")


REFERENCE = """
from flowlib import data, recipe, train
x = data.PictureDistribution.from_text("Flow").sample(100_000, seed=0)
history = train.fit(recipe.HEADLINE.build(seed=0), x, steps=2000, seed=0, progress=False,
                    **recipe.HEADLINE.fit_kwargs())
calls = len(history.times) - 1
print(f"{calls * 100 / (history.times[-1] - history.times[0]):.0f} {history.times[0]:.1f}")
"""


def machine_reference() -> str:
    """How fast this machine is now: the headline recipe's training steps per second after
    its first call (2,000 steps, in a fresh process), and that first call. The same figure
    as the steps/s column of bench/results/quality.txt, so runs on different days (the
    shared machine's speed varies by 1.5x or more) can be put side by side."""
    result = subprocess.run(
        [sys.executable, "-c", REFERENCE],
        cwd=_common.ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        return "machine reference: FAILED"
    rate, first = result.stdout.split()[-2:]
    return f"machine reference: the headline trains at {rate} steps/s after a first call of {first} s"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="notebook number prefixes to run (default: all)")
    parser.add_argument("--modes", nargs="+", choices=("fast", "full"), default=["fast", "full"])
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument(
        "--name", default="notebooks", help="results file bench/results/NAME.txt (default: %(default)s)"
    )
    args = parser.parse_args(argv)

    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        paths = [p for p in paths if any(p.name.startswith(prefix) for prefix in args.only)]
    saved_environment = dict(os.environ)
    with _common.recorded(args.name, enabled=not args.no_record):
        _common.header("notebooks: wall time and peak resident memory, fast (CI) and full (reader) mode")
        print(
            "# each notebook executed with nbclient in a temporary copy of notebooks/ "
            "(no committed file or checkpoint is used or changed)"
        )
        print(f"# {machine_reference()} | {_common.load()}")
        print(f"\n{'what':<34} {'mode':<5} {'seconds':>8} {'peak MiB':>9}  status | load")
        rows = []
        for mode in args.modes:
            for path in paths:
                with tempfile.TemporaryDirectory(prefix="nb_") as temporary:
                    workdir = Path(temporary) / "notebooks"
                    shutil.copytree(
                        NOTEBOOKS, workdir, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "checkpoints")
                    )
                    seconds, peak, status = run_notebook(path, mode == "fast", workdir)
                rows.append((path.name, mode, seconds, peak, status))
                print(
                    f"{path.name:<34} {mode:<5} {seconds:8.1f} {peak:9.0f}  {status} | {_common.load()}",
                    flush=True,
                )
            if not args.no_demo:
                seconds, peak, status = run_demo(mode == "fast")
                rows.append(("python -m flowlib demo", mode, seconds, peak, status))
                print(
                    f"{'python -m flowlib demo':<34} {mode:<5} {seconds:8.1f} {peak:9.0f}  {status} | "
                    f"{_common.load()}",
                    flush=True,
                )
        os.environ.clear()
        os.environ.update(saved_environment)
        print(
            f"\n## against the targets (fast < {LIMIT_SECONDS['fast']} s, full < {LIMIT_SECONDS['full']} s, "
            f"memory < {LIMIT_MIB} MiB)"
        )
        for name, mode, seconds, peak, status in rows:
            limit = LIMIT_SECONDS[mode]
            notes = []
            if seconds > limit:
                notes.append(f"over {limit} s")
            if peak > LIMIT_MIB:
                notes.append(f"over {LIMIT_MIB} MiB")
            if not status.startswith("ok"):
                notes.append(status)
            print(f"   {name:<34} {mode:<5} {'; '.join(notes) if notes else 'within targets'}")
        print(f"# {machine_reference()} | {_common.load()} at the end")


if __name__ == "__main__":
    main()

"""The layer explorer in a real browser: JupyterLab on loopback, headless Chromium.

Starts JupyterLab on 127.0.0.1, opens notebook 06 in Debian's Chromium driven by
Playwright (``executable_path``; no browser is downloaded), runs all cells in the test
harness's fast mode (tests/harness/), moves the layer slider of flowlib's explorer and asserts that the figure changed by
comparing screenshots, which are kept under ``artifacts/browser/``.

Run with ``make test-browser`` (it is not part of the default test collection, as it needs
Chromium: ``apt-get install chromium``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "browser"
NOTEBOOK = os.environ.get("FLOWLIB_BROWSER_NOTEBOOK", "06_full_stack.ipynb")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_spec = importlib.util.spec_from_file_location(
    "fast_mode_harness", ROOT / "tests" / "harness" / "fast_mode.py"
)
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    port, token = free_port(), "flowlib-browser-test"
    home = tmp_path_factory.mktemp("jupyter-home")
    # A copy of notebooks/: JupyterLab saves what it opens, and the checkout must not change.
    served = tmp_path_factory.mktemp("served") / "notebooks"
    shutil.copytree(ROOT / "notebooks", served)
    env = dict(
        harness.kernel_environment(fast=True),  # the lab's kernels: the harness installed, fast
        TF_CPP_MIN_LOG_LEVEL="2",
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
    )
    log = open(tmp_path_factory.mktemp("logs") / "lab.log", "w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={served}",
            "--ServerApp.open_browser=False",
            "--allow-root",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        process.terminate()
        pytest.fail("JupyterLab did not start on loopback within 60 s")
    yield url, token
    process.terminate()
    process.wait(timeout=30)
    log.close()


def difference(a: Path, b: Path) -> float:
    from PIL import Image

    first = np.asarray(Image.open(a).convert("L"), dtype=float)
    second = np.asarray(Image.open(b).convert("L").resize(Image.open(a).size), dtype=float)
    return float(np.mean(np.abs(first - second) > 16))


def test_moving_the_slider_redraws_the_figure(lab, launch_chromium):
    from playwright.sync_api import sync_playwright

    url, token = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}")
        page.wait_for_selector(".jp-Notebook", timeout=120_000)
        # The kernel must be up before "Run All Cells", or the command silently does nothing.
        page.get_by_text(re.compile(r"\| Idle")).first.wait_for(timeout=180_000)
        prompts = page.locator(".jp-InputPrompt")
        for _ in range(5):
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            page.wait_for_timeout(3000)
            if any(text.strip() not in ("[ ]:", "") for text in prompts.all_inner_texts()):
                break  # execution started ([*] or a number in the first prompt)
        else:
            page.screenshot(path=str(ARTIFACTS / "not_started.png"))
            pytest.fail("Run All Cells did not start the notebook")

        explorer = page.locator(".flowlib-layer-explorer").first
        try:
            explorer.wait_for(state="visible", timeout=420_000)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "timeout.png"), full_page=True)
            raise
        figure = explorer.locator(".widget-output img").first
        figure.wait_for(state="visible", timeout=120_000)
        explorer.scroll_into_view_if_needed()
        before = ARTIFACTS / "explorer_layer_0.png"
        figure.screenshot(path=str(before))

        caption = explorer.locator(".flowlib-layer-explorer-caption").first
        assert caption.inner_text().startswith("layer 0 /")
        last = int(caption.inner_text().split("/")[1].split(":")[0])
        readout = explorer.locator(".widget-readout").first
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type(str(last))
        page.keyboard.press("Enter")
        page.wait_for_function(
            "([el, text]) => el.innerText.startsWith(text)",
            arg=[caption.element_handle(), f"layer {last} /"],
            timeout=60_000,
        )
        page.wait_for_timeout(1500)  # the new image replaces the old one
        figure = explorer.locator(".widget-output img").first
        after = ARTIFACTS / f"explorer_layer_{last}.png"
        figure.screenshot(path=str(after))
        page.screenshot(path=str(ARTIFACTS / "notebook.png"), full_page=False)
        browser.close()
    changed = difference(before, after)
    print(f"screenshots: {before} {after}; {changed:.1%} of pixels changed")
    assert changed > 0.02, "moving the slider did not change the figure"

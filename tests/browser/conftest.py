"""What the browser tests share: how Debian's Chromium is started on this closed network."""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Headless, as root, with nothing that reaches for Google's hosts (the machine has no
# network beyond loopback, and those connections would be refused at every start).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture
def launch_chromium():
    """``launch_chromium(playwright)``: a headless Debian Chromium driven by Playwright."""

    def launch(playwright):
        return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)

    return launch

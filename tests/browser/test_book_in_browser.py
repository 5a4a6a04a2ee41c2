"""The read-along site in a real browser: every page loads, every image is drawn, no
internal link is broken, every notebook page has its "launch in Colab" link.

Serves book/_build/html (built by `make book`) on loopback and opens every page in Debian's
Chromium driven by Playwright (``executable_path``; no browser is downloaded). Requests to
any other host are refused, and only the CDNs named in EXPECTED_REMOTE may be asked for.
Run with ``make test-book``.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

from flowlib import config

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "book" / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Remote hosts the site may ask for, refused here: the Jupyter widget manager
# (cdn.jsdelivr.net) and require.js (cdnjs.cloudflare.com), which it loads on pages whose
# notebook saved widget state. Offline, saved widgets show as their text; every figure is a
# local image, and MathJax is served with the site (test_formulas_are_typeset_offline).
EXPECTED_REMOTE = ("cdn.jsdelivr.net", "cdnjs.cloudflare.com")

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
    pytest.mark.skipif(not (SITE / "index.html").is_file(), reason="no site: run `make book`"),
]


@pytest.fixture(scope="module")
def site():
    handler = functools.partial(QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def pages_on_disk() -> list[str]:
    return sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html") if "_static" not in p.parts)


def local_only(remote: set[str]):
    """A Playwright route handler: requests to loopback go through, any other host is
    refused and recorded in ``remote``."""

    def route(request_route):
        host = urlparse(request_route.request.url).hostname
        if host in ("127.0.0.1", None):
            return request_route.continue_()
        remote.add(host)
        return request_route.abort()

    return route


IMAGES_DRAWN = """async () => {
    const images = Array.from(document.images);
    for (const img of images) { img.loading = "eager"; img.scrollIntoView(); }
    await Promise.all(images.map(img => img.decode().catch(() => null)));
    return images.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth}));
}"""
LINKS = "() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"
IDS = "() => Array.from(document.querySelectorAll('[id]')).map(e => e.id)"


def test_every_page_loads_with_its_images_and_links(site, launch_chromium):
    from playwright.sync_api import sync_playwright

    pages = pages_on_disk()
    notebooks = [p for p in pages if p.startswith(("notebooks/", "exercises/"))]
    assert len(notebooks) >= 14, pages  # the series and its student copies
    remote, errors, broken_images, links = set(), [], [], {}
    ids: dict[str, set[str]] = {}
    colab_links: dict[str, set[str]] = {}

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route("**/*", local_only(remote))
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        for name in pages:
            response = page.goto(site + name, wait_until="load")
            assert response is not None and response.ok, (
                f"{name} did not load: {response and response.status}"
            )
            if name == "index.html":  # redirects to the front page
                page.wait_for_url(site + "README.html", timeout=30_000)
                links[name] = [site + "README.html"]
                continue
            for image in page.evaluate(IMAGES_DRAWN):
                if image["width"] == 0:
                    broken_images.append(f"{name}: {image['src']}")
            links[name] = page.evaluate(LINKS)
            ids[name] = set(page.evaluate(IDS))
            colab_links[name] = {h for h in links[name] if h.startswith("https://colab.research.google.com/")}
        browser.close()

    assert not broken_images, "images not drawn:\n" + "\n".join(broken_images)
    assert not errors, "JavaScript errors:\n" + "\n".join(errors)
    assert remote <= set(EXPECTED_REMOTE), f"the site asks for remote hosts: {sorted(remote)}"

    broken, reached = [], {"index.html"}
    for name, hrefs in links.items():
        for href in hrefs:
            target, fragment = urldefrag(urljoin(site + name, href))
            if not target.startswith(site):
                continue
            path = target[len(site) :] or "index.html"
            if path.endswith("/"):
                path += "index.html"
            if not (SITE / path).is_file():
                broken.append(f"{name} -> {href}")
            elif fragment and path in ids and fragment not in ids[path]:
                broken.append(f"{name} -> {href} (no #{fragment} there)")
            reached.add(path)
    assert not broken, "broken internal links:\n" + "\n".join(broken)
    unreached = [p for p in pages if p not in reached and not p.startswith("_")]
    assert not unreached, f"pages no link leads to: {unreached}"

    for name in notebooks:
        source = name.removesuffix(".html") + ".ipynb"
        assert config.colab_url(source) in colab_links[name], f"{name} has no 'launch in Colab' link"


def test_front_page_is_the_readme_with_the_animation(site):
    """index.html leads to the README page, which shows the animation."""
    html = (SITE / "README.html").read_text()
    assert "Two commands" in html and "flow_layers.gif" in html
    assert "README.html" in (SITE / "index.html").read_text()
    assert os.path.getsize(SITE / "_images" / "flow_layers.gif") > 10_000


def test_formulas_are_typeset_offline(site, launch_chromium):
    """MathJax comes with the site: with every remote host refused, the formulas of a
    notebook page are typeset (MathJax's <mjx-container> elements), not left as raw TeX."""
    from playwright.sync_api import sync_playwright

    remote = set()

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        page.route("**/*", local_only(remote))
        page.goto(site + "notebooks/02_change_of_variables.html", wait_until="load")
        page.wait_for_function(  # MathJax typesets asynchronously, after the page's load event
            "() => { const m = document.querySelectorAll('.math');"
            " return m.length > 0 && Array.from(m).every(e => e.querySelector('mjx-container')); }",
            timeout=60_000,
        )
        typeset = page.evaluate("() => document.querySelectorAll('mjx-container').length")
        raw = page.evaluate(  # Sphinx's math spans still holding TeX instead of MathJax's output
            "() => Array.from(document.querySelectorAll('.math')).filter("
            "e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 60))"
        )
        browser.close()
    assert typeset >= 20, f"only {typeset} formulas typeset"
    assert not raw, f"formulas left as raw TeX: {raw[:5]}"
    assert not any("mathjax" in host for host in remote), sorted(remote)

"""Sphinx configuration of the read-along site (`make book`).

The site is built from the repository itself (``sphinx-build -c book . book/_build/html``):
README.md is the front page, then every notebook of ``notebooks/`` with its committed
outputs (nothing is executed: ``nb_execution_mode = "off"``), then the student copies of
``exercises/``. Sphinx + MyST-NB + the Sphinx Book Theme were chosen because they build
offline from pip packages alone (Jupyter Book 2 / mystmd downloads its site theme on the
first build and needs Node.js), and they are what Jupyter Book 1 runs underneath, without
its extra layer.

Two rewrites happen as each page is read (nothing in the repository changes):

- a relative link to a file that is not a page of the site (``flowlib/``, ``LICENSE``...)
  points at GitHub, at the series' ref;
- the "Open in Colab" badge image is a local SVG, so the site shows no remote image.

Every notebook page carries the theme's "launch in Colab" button, opening that notebook at
``flowlib.config.REF``.

Formulas are typeset by MathJax served with the site itself (``make book`` installs the
``mathjax`` package from the npm registry into ``build/mathjax``), not from a CDN, so a
classroom intranet without internet access still shows the mathematics.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flowlib import config  # noqa: E402

project = "Normalizing flows in TensorFlow 2"
author = "The flowlib authors"
copyright = "2026, the flowlib authors (code: MIT; prose and figures: CC BY 4.0)"
release = config.REF

NOTEBOOKS = sorted(
    p.relative_to(ROOT).with_suffix("").as_posix() for p in ROOT.glob("notebooks/[0-9][0-9]_*.ipynb")
)
EXERCISES = sorted(
    p.relative_to(ROOT).with_suffix("").as_posix() for p in ROOT.glob("exercises/[0-9][0-9]_*.ipynb")
)
PAGES = {"README", "CHANGELOG", "book/exercises", *NOTEBOOKS, *EXERCISES}

extensions = ["myst_nb"]
root_doc = "README"
include_patterns = [
    "README.md",
    "CHANGELOG.md",
    "book/exercises.md",
    "notebooks/[0-9][0-9]_*.ipynb",
    "exercises/[0-9][0-9]_*.ipynb",
]
exclude_patterns = [".venv*", "**/.ipynb_checkpoints", "book/_build", "artifacts", "figures"]

nb_execution_mode = "off"  # the committed outputs of a full run are the content
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # a notebook may step from # to ### in a markdown cell

html_theme = "sphinx_book_theme"
html_title = "Normalizing flows in TensorFlow 2"
html_static_path = ["_static"]
# MathJax 3 from the npm package: its folder is copied into _static/ (es5/ and package.json).
MATHJAX = ROOT / "build" / "mathjax" / "node_modules" / "mathjax" / "es5"
if not (MATHJAX / "tex-chtml.js").is_file():
    raise RuntimeError(f"MathJax is missing from {MATHJAX}: build the site with `make book`")
html_static_path.append(str(MATHJAX.parent))
mathjax_path = "es5/tex-chtml.js"
html_theme_options = {
    "repository_url": f"https://github.com/{config.REPOSITORY}",
    "repository_branch": config.REF,
    "path_to_docs": "",
    "use_repository_button": True,
    "launch_buttons": {"colab_url": "https://colab.research.google.com"},
    "show_toc_level": 2,
}

COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
LINK = re.compile(r"(?<=\]\()(?P<target>[^)\s\"\\]+)(?=\))")


def _rewrite(docname: str, text: str) -> str:
    folder = Path(docname).parent
    depth = len(folder.parts)
    text = text.replace(COLAB_BADGE, "../" * depth + "book/_static/colab-badge.svg")

    def link(match: re.Match) -> str:
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#", target):  # a URL or an anchor on this page
            return target
        path, _, anchor = target.partition("#")
        resolved = (ROOT / folder / path).resolve()
        relative = resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else None
        if relative is None:
            return target
        if relative.rsplit(".", 1)[0] in PAGES or resolved.suffix.lower() in (".png", ".gif", ".svg", ".jpg"):
            return target  # a page of the site, or an image Sphinx copies
        kind = "tree" if resolved.is_dir() else "blob"
        url = f"https://github.com/{config.REPOSITORY}/{kind}/{config.REF}/{relative}"
        return url + (f"#{anchor}" if anchor else "")

    return LINK.sub(link, text)


def _toctrees() -> str:
    def toctree(caption: str, entries: list[str]) -> str:
        lines = "\n".join(entries)
        return f"\n\n```{{toctree}}\n:hidden:\n:caption: {caption}\n\n{lines}\n```\n"

    return (
        toctree("The notebooks", NOTEBOOKS)
        + toctree("Exercises", ["book/exercises", *EXERCISES])
        + toctree("About", ["CHANGELOG"])
    )


def _source_read(app, docname: str, source: list[str]) -> None:
    source[0] = _rewrite(docname, source[0])
    if docname == root_doc:
        source[0] += _toctrees()


def _index_page(app, exception) -> None:
    """index.html sends the reader to the front page (the README)."""
    if exception is None and app.builder.format == "html":
        Path(app.outdir, "index.html").write_text(
            '<!DOCTYPE html><html><head><meta charset="utf-8">'
            '<meta http-equiv="refresh" content="0; url=README.html">'
            "<title>Normalizing flows in TensorFlow 2</title></head>"
            '<body><a href="README.html">Normalizing flows in TensorFlow 2</a></body></html>\n'
        )


def setup(app):
    app.connect("source-read", _source_read)
    app.connect("build-finished", _index_page)

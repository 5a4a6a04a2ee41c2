"""Every link to the series names one repository and one ref: ``flowlib.config.REF``.

Two kinds of link point at GitHub from what a reader opens:

- the "Open in Colab" badges (README, every notebook in ``notebooks/`` and ``exercises/``),
  ``https://colab.research.google.com/github/<repository>/blob/<ref>/<path>``;
- the install line of each notebook's Colab cell, ``git+https://github.com/<repository>@<ref>``.

If the badge opens the notebooks of one commit and the cell installs flowlib from another,
a reader in Colab runs notebooks against a library they were not written for. So both take
``REPOSITORY`` and ``REF`` from ``flowlib/config.py``.

``check`` lists every link that disagrees (wrong repository or ref, a badge to a file that
does not exist, a notebook whose badge does not open itself, a notebook without the install
line) and fails if there is one; ``write`` rewrites every link to the configured
repository and ref (run it after changing ``REF``, then re-run ``check``).

Usage: python tools/refs.py {check,write}
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flowlib import config  # noqa: E402  (after the path above)

BADGE = re.compile(
    r"https://colab\.research\.google\.com/github/(?P<repository>[\w.-]+/[\w.-]+)"
    r"/blob/(?P<ref>[\w.-]+)/(?P<path>[^\s)\"'\\]+)"
)
INSTALL = re.compile(
    r"git\+https://github\.com/(?P<repository>[\w.-]+/[\w.-]+?)(?:\.git)?@(?P<ref>[^\s\"'\\]+)"
)


def notebooks(root: Path) -> list[Path]:
    """The notebooks a reader opens: the series and the student copies."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")) + sorted(
        (root / "exercises").glob("[0-9][0-9]_*.ipynb")
    )


def linked_files(root: Path) -> list[Path]:
    """Every file whose links are checked: README, notebooks and their py:percent twins, the book."""
    files = [root / "README.md", *notebooks(root), *sorted((root / "notebooks").glob("[0-9][0-9]_*.py"))]
    book = root / "book"
    if book.is_dir():
        files += sorted(
            p
            for p in book.rglob("*")
            if p.suffix in (".md", ".py", ".yml", ".yaml", ".html") and "_build" not in p.parts
        )
    return [path for path in files if path.is_file()]


def find_problems(root: Path = ROOT) -> list[str]:
    """One line per link that disagrees with ``config.REPOSITORY``/``config.REF``."""
    problems = []
    for path in linked_files(root):
        name = path.relative_to(root).as_posix()
        text = path.read_text()
        for match in BADGE.finditer(text):
            if (match["repository"], match["ref"]) != (config.REPOSITORY, config.REF):
                problems.append(
                    f"{name}: Colab badge names {match['repository']}@{match['ref']}, "
                    f"not {config.REPOSITORY}@{config.REF}: {match[0]}"
                )
            if not (root / match["path"]).is_file():
                problems.append(f"{name}: Colab badge opens {match['path']}, which does not exist")
        for match in INSTALL.finditer(text):
            if (match["repository"], match["ref"]) != (config.REPOSITORY, config.REF):
                problems.append(
                    f"{name}: install line names {match['repository']}@{match['ref']}, "
                    f"not {config.REPOSITORY}@{config.REF}: {match[0]}"
                )
    for path in notebooks(root):
        name = path.relative_to(root).as_posix()
        cells = json.loads(path.read_text())["cells"]
        first = "".join(cells[0]["source"]) if cells else ""
        if config.colab_url(name) not in first:
            problems.append(
                f"{name}: its first cell has no Colab badge opening itself ({config.colab_url(name)})"
            )
        setup = next(("".join(c["source"]) for c in cells if c["cell_type"] == "code"), "")
        if config.install_url() not in setup:
            problems.append(f"{name}: its first code cell does not install {config.install_url()}")
    return problems


def write(root: Path = ROOT) -> list[Path]:
    """Rewrite every badge and install line to the configured repository and ref; return changed files."""
    changed = []
    for path in linked_files(root):
        text = path.read_text()
        new = BADGE.sub(lambda m: config.colab_url(m["path"]), text)
        new = INSTALL.sub(config.install_url(), new)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("check", "write"))
    args = parser.parse_args(argv)
    if args.command == "write":
        for path in write():
            print(f"rewrote {path.relative_to(ROOT)}")
    problems = find_problems()
    for problem in problems:
        print(problem)
    if not problems:
        print(f"every Colab badge and install line names {config.REPOSITORY}@{config.REF}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

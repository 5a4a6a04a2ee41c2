"""IPython start-up for the Colab-like run (`make test-colab`).

1. Import the ``google.colab`` stub, as Colab's runtime does before any cell runs.
2. Replace the ``pip`` line magic, so that installing flowlib from GitHub at the pinned ref
   installs the wheel built from this checkout instead (CI has no network but the package
   registries). Both spellings reach it: ``%pip install ...`` and
   ``get_ipython().run_line_magic("pip", "install ...")``, the form the notebooks use so that
   their py:percent twin also runs as a plain script. The rewrite must happen: a ``pip``
   line naming any other GitHub URL is an error here, so a notebook whose install line
   drifted from flowlib.config fails loudly. Installs are serialised with a file lock, since
   two notebooks may run at once (pytest-xdist) in one environment.
"""

import fcntl
import os

import google.colab  # noqa: F401  (the stub)

_local = os.environ["FLOWLIB_LOCAL_WHEEL"]
_url = f"git+https://github.com/{os.environ['FLOWLIB_REPOSITORY']}@{os.environ['FLOWLIB_REF']}"
_ip = get_ipython()  # noqa: F821  (defined in IPython start-up files)
_real_pip = _ip.find_line_magic("pip")


def _pip(line):
    if "github.com" in line:
        if _url not in line:
            raise RuntimeError(f"the Colab install line does not name {_url}: {line}")
        line = line.replace(f'"{_url}"', _local).replace(_url, _local)
        print(f"[colab-like run] installing flowlib from {_local} instead of {_url}")
    with open(_local + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _real_pip(line)


_ip.register_magic_function(_pip, magic_kind="line", magic_name="pip")

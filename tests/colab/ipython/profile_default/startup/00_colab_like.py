"""IPython start-up for the Colab-like run (`make test-colab`).

1. Import the ``google.colab`` stub, as Colab's runtime does before any cell runs.
2. Wrap the ``%pip`` magic so that installing flowlib from GitHub at the pinned ref
   installs the local checkout instead (CI has no network but the package registries).
   The rewrite must happen: a ``%pip install`` of any other GitHub URL is an error here,
   so a notebook whose install line drifted from flowlib.config fails loudly.
"""
import os

import google.colab  # noqa: F401  (the stub)

_checkout = os.environ["FLOWLIB_LOCAL_CHECKOUT"]
_url = f"git+https://github.com/{os.environ['FLOWLIB_REPOSITORY']}@{os.environ['FLOWLIB_REF']}"
_ip = get_ipython()  # noqa: F821  (defined in IPython start-up files)
_real_pip = _ip.find_line_magic("pip")


def _pip(line):
    if "github.com" in line:
        if _url not in line:
            raise RuntimeError(f"the Colab install line does not name {_url}: {line}")
        line = line.replace(f'"{_url}"', _checkout).replace(_url, _checkout)
        print(f"[colab-like run] installing flowlib from {_checkout} instead of {_url}")
    return _real_pip(line)


_ip.register_magic_function(_pip, magic_kind="line", magic_name="pip")

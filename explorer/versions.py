"""The versions a result depends on: explorer's own and those of the libraries that shape its numbers.

Checkpoints and evaluation reports (LPS included) record `library_versions()`, so a number can be traced to the
code that produced it. ``__version__`` lives here, in the engine, so recording it needs no import of the package's
front door (`explorer/__init__.py` re-exports it).
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

__version__ = "0.1.0"

LIBRARIES = ("torch", "numpy", "safetensors", "lightgbm", "scikit-learn")


def library_versions() -> dict[str, str]:
    """``{"explorer": ..., "python": ..., library: version}`` for each of `LIBRARIES` that is installed."""
    out = {"explorer": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out

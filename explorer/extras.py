"""Optional dependencies: the `[lab]`, `[umap]` and `[data]` extras of the package, imported where they are used."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """``import module``, or a ModuleNotFoundError that says which extra installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"{purpose} needs the {err.name} package, which the [{extra}] extra installs: "
                                  f"pip install 'explorer[{extra}]' (or [all])", name=err.name) from err

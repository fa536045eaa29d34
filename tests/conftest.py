"""Fixtures shared by the test files. Helpers that tests import by name (``small_config``, ``running``) are in
``tests/helpers.py``; polling for another thread's work is in ``tests/waiting.py`` (no sleeps as synchronisation).

Markers (declared in pyproject.toml): ``slow`` tests are deselected by the default run (``-m "not slow"`` in its
addopts) and run with ``pytest -m slow``; ``distributed`` and ``browser`` tests run by default."""

from __future__ import annotations

import pytest

from explorer.data import Dataset, load_dataset


@pytest.fixture(scope="session")
def digits() -> Dataset:
    """The 1,797 8x8 digits every quick training test uses (read-only: no test changes it)."""
    return load_dataset("digits")

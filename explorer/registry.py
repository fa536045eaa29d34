"""`Registry`: the one way a plug-in kind (objectives, prior families, datasets, model builders) is made known.

Each kind keeps one registry, a read-only mapping name -> class or builder in the order of registration, so that
the command line, the panels and the trainer list exactly what was registered, built-in entries first::

    MODELS = Registry("model")

    @MODELS.register("conv")
    def conv_pair(config, head_dim): ...

    MODELS["conv"]      # the builder; an unknown name raises UnknownName, naming the known ones

A name is registered once: registering another entry under a taken name is a ValueError naming the entry that holds
it. The same definition registered again (a module imported twice, a notebook cell run again) replaces itself.
``info`` keeps what an entry declares besides itself (a dataset's panel presets, say).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class UnknownName(KeyError, ValueError):
    """A name no entry of a registry has: a ValueError (a bad setting) and a KeyError (a missing mapping key)."""

    def __str__(self) -> str:
        return str(self.args[0])


def _origin(item: Any) -> str:
    return f"{getattr(item, '__module__', '?')}.{getattr(item, '__qualname__', repr(item))}"


class Registry(Mapping[str, T], Generic[T]):
    """Name -> entry of one plug-in ``kind`` (e.g. "objective"), in the order entries were registered."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._info: dict[str, dict[str, Any]] = {}

    @overload
    def register(self, name: str, entry: None = None, **info: Any) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, entry: T, **info: Any) -> T: ...

    def register(self, name: str, entry: T | None = None, **info: Any) -> T | Callable[[T], T]:
        """Register ``entry`` under ``name`` and return it; without ``entry``, a decorator that does so."""
        if entry is None:
            return lambda item: self.register(name, item, **info)
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} registry: a name must be a non-empty string, got {name!r}")
        taken = self._entries.get(name)
        if taken is not None and _origin(taken) != _origin(entry):
            raise ValueError(f"{self.kind} name {name!r} is taken by {_origin(taken)}; choose another name")
        self._entries[name] = entry
        self._info[name] = info
        return entry

    def info(self, name: str) -> dict[str, Any]:
        """What ``name``'s entry declared when it was registered (its keyword arguments besides the entry)."""
        self[name]
        return dict(self._info[name])

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownName(f"unknown {self.kind} {name!r}; known: {', '.join(self._entries) or 'none'}") from None

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:  # an unhashable name is no entry's
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"

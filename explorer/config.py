"""Declared settings: the checks every config shares, and `option`, a dataclass field that carries its help and check.

A config dataclass (`explorer.training.TrainConfig`, each objective's ``Config``) declares every setting once, as an
`option`; `validate` runs the declared checks in ``__post_init__`` and the command line (`explorer.cli`) reads the
same declaration for its flags. A bad value raises one ``ValueError`` naming the owner, the setting and the value,
e.g. "TrainConfig: steps must be an integer >= 1, got 0".
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

Check = Callable[[str, str, Any], Any]  # (owner, name, value) -> the value, normalized; ValueError if bad


def integer(minimum: int = 1, maximum: int | None = None) -> Check:
    """An int (Python or numpy, not bool) >= ``minimum`` (and <= ``maximum``)."""
    bound = f">= {minimum}" if maximum is None else f"from {_power(minimum)} to {_power(maximum)}"

    def check(owner: str, name: str, value: Any) -> int:
        try:
            number = None if isinstance(value, bool) else operator.index(value)
        except TypeError:
            number = None
        if number is None or number < minimum or (maximum is not None and number > maximum):
            raise ValueError(f"{owner}: {name} must be an integer {bound}, got {value!r}")
        return number

    return check


def _power(n: int) -> str:
    """Large bounds as powers of two (2**64 - 1), small ones as they are."""
    for offset in (0, 1):
        if abs(n + offset) >= 2**16 and (abs(n + offset) & (abs(n + offset) - 1)) == 0:
            text = f"{'-' if n < 0 else ''}2**{abs(n + offset).bit_length() - 1}"
            return text + (" - 1" if offset else "")
    return str(n)


def of_type(kind: type) -> Check:
    """An instance of ``kind`` (exactly bool for bool: 0 and 1 are not flags)."""

    def check(owner: str, name: str, value: Any) -> Any:
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ValueError(f"{owner}: {name} must be a {kind.__name__}, got {value!r}")
        return value

    return check


def number(minimum: float = 0.0, strict: bool = False) -> Check:
    """A finite number >= ``minimum`` (> with ``strict``), as a float."""
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"

    def check(owner: str, name: str, value: Any) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value < minimum or (strict and value == minimum):
            raise ValueError(f"{owner}: {name} must be a finite number {bound}, got {value!r}")
        return float(value)

    return check


def one_of(choices: Sequence[Any]) -> Check:
    def check(owner: str, name: str, value: Any) -> Any:
        if value not in choices:
            raise ValueError(f"{owner}: {name} must be one of {list(choices)}, got {value!r}")
        return value

    return check


def optional(inner: Check) -> Check:
    """None, or what ``inner`` accepts."""
    return lambda owner, name, value: None if value is None else inner(owner, name, value)


def option(default: Any = dataclasses.MISSING, help: str = "", check: Check | None = None, *,
           factory: Callable[[], Any] | None = None, **meta: Any) -> Any:
    """A dataclass field with its ``help`` text and ``check``; further ``meta`` (e.g. ``choices``, ``range``,
    ``weight``, ``fact``, ``flag``, ``group``) is read by the command line and the widgets."""
    metadata = {"help": help, "check": check, **meta}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def validate(config: Any, owner: str | None = None) -> None:
    """Run the declared check of every field of the (frozen) dataclass ``config``, storing the normalized values."""
    owner = owner or type(config).__name__
    for field in dataclasses.fields(config):
        check = field.metadata.get("check")
        if check is not None:
            object.__setattr__(config, field.name, check(owner, field.name, getattr(config, field.name)))


def from_options(cls: type, owner: str, options: dict[str, Any]) -> Any:
    """``cls(**options)``, with an unknown option reported by name together with the known ones."""
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"{owner}: unknown option(s) {unknown}; options are {known or 'none'}")
    return cls(**options)

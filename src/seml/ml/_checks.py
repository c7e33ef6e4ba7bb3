"""Small typed checks for a loaded model's attributes; each failure names where and what.

A failure raises `Invalid` with a message such as
``estimators_[3].tree_: node 0 has child 1000000000, outside its 5 nodes``; the model loader
turns it into an `IntegrityError` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "Invalid",
    "array",
    "attr",
    "child",
    "choice",
    "exact_type",
    "finite",
    "integer",
    "number",
    "qualname",
]


class Invalid(Exception):
    """A model's internal state is inconsistent; the message says where and how."""


def child(where: str, name: str | int) -> str:
    """The path of an attribute (``a.b``) or an item (``a[3]``) below `where`, for messages."""
    if isinstance(name, int):
        return f"{where}[{name}]"
    return f"{where}.{name}" if where else name


def qualname(obj_or_type: Any) -> str:
    """``module.Class`` of a type or of an object's type."""
    cls = obj_or_type if isinstance(obj_or_type, type) else type(obj_or_type)
    return f"{cls.__module__}.{cls.__qualname__}"


def attr(obj: Any, name: str, where: str) -> Any:
    """`obj.name`, or `Invalid` if the model lacks it."""
    try:
        return getattr(obj, name)
    except AttributeError:
        raise Invalid(f"{where}: lacks {name}") from None


def exact_type(value: Any, expected: type | tuple[type, ...], where: str) -> None:
    """`value` is an instance of exactly one of `expected` (no subclass)."""
    options = expected if isinstance(expected, tuple) else (expected,)
    if type(value) not in options:
        names = " or ".join(t.__name__ for t in options)
        raise Invalid(f"{where}: is a {type(value).__name__}, expected {names}")


def integer(value: Any, where: str, *, low: int | None = None, high: int | None = None) -> int:
    """A Python or numpy integer (not a bool) within [low, high]."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise Invalid(f"{where}: is {_shown(value)}, expected an integer")
    n = int(value)
    if (low is not None and n < low) or (high is not None and n > high):
        bounds = f"[{'' if low is None else low}, {'' if high is None else high}]"
        raise Invalid(f"{where}: is {n}, outside {bounds}")
    return n


def number(value: Any, where: str) -> float:
    """A finite real number."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        raise Invalid(f"{where}: is {_shown(value)}, expected a number")
    x = float(value)
    if not np.isfinite(x):
        raise Invalid(f"{where}: is {x}, not a finite number")
    return x


def choice(value: Any, options: Iterable[Any], where: str) -> Any:
    """`value` is one of `options` (compared by equality, strings and plain values only)."""
    allowed = list(options)
    if not isinstance(value, str | int | float | type(None)) or value not in allowed:
        raise Invalid(f"{where}: is {_shown(value)}, expected one of {allowed}")
    return value


def array(
    value: Any,
    where: str,
    *,
    kinds: str,
    shape: tuple[int | None, ...] | None = None,
    ndim: int | None = None,
    dtype: np.dtype[Any] | None = None,
) -> np.ndarray[Any, Any]:
    """A numpy array whose dtype kind is in `kinds` (``f`` float, ``i``/``u`` integer, ``b``
    bool, ``O`` object, ``U`` str), with `ndim` dimensions or `shape` (None: any length)."""
    if type(value) is not np.ndarray:
        raise Invalid(f"{where}: is {_shown(value)}, expected an array")
    if value.dtype.kind not in kinds:
        raise Invalid(f"{where}: has dtype {value.dtype}, expected kind {kinds!r}")
    if dtype is not None and value.dtype != dtype:
        raise Invalid(f"{where}: has dtype {value.dtype}, expected {dtype}")
    if ndim is not None and value.ndim != ndim:
        raise Invalid(f"{where}: has {value.ndim} dimensions, expected {ndim}")
    if shape is not None:
        fits = value.ndim == len(shape) and all(
            want is None or got == want for got, want in zip(value.shape, shape, strict=True)
        )
        if not fits:
            wanted = tuple("any" if s is None else s for s in shape)
            raise Invalid(f"{where}: has shape {value.shape}, expected {wanted}")
    return value


def finite(values: np.ndarray[Any, Any], where: str) -> None:
    """Every element of a float array is finite (not NaN, not infinite)."""
    bad = ~np.isfinite(values)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        shown = index[0] if len(index) == 1 else index
        raise Invalid(f"{where}: element {shown} is {values[index]}, not a finite number")


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str | int | float | type(None)) else None
    if text is not None and len(text) <= 40:
        return text
    return f"a {type(value).__name__}"

"""Package names imported on first use (PEP 562), for packages whose light paths (a phase's
program, `seml run`) must not pay for the modules their other names live in."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: dict[str, Any], homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level `__getattr__` and `__dir__` of the package whose `globals()` is
    `namespace`: a name in `homes` is imported from its private module the first time it is
    asked for, then kept as a plain module attribute."""
    package = namespace["__name__"]

    def module_getattr(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        namespace[name] = value  # once: later lookups are plain module attributes
        return value

    def module_dir() -> list[str]:
        return sorted({*namespace, *namespace.get("__all__", ())})

    return module_getattr, module_dir

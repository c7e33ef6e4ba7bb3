"""httpx, imported without its command-line tool.

httpx loads `httpx._main` (rich, pygments) at import time, but supports its absence: the
import is wrapped in ``except ImportError``. A workload under `seml run` never uses that tool
and would pay ~50 ms for it at every service start. A None entry in `sys.modules` is Python's
documented way to make one import fail; it is removed right after, so an explicit
``import httpx._main`` elsewhere still works.
"""

from __future__ import annotations

import sys

__all__ = ["httpx"]

if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx
    finally:
        del sys.modules["httpx._main"]
else:  # pragma: no cover - httpx was imported before seml
    import httpx

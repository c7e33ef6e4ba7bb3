"""How refusals reach the audit log: bounded in size, bounded in number, never lost.

Anyone can make the service refuse (no credential is needed to send a bad request), so a
refusal cannot cost a log entry each: that grows the permanent, append-only log without bound.
The book below keeps the record that refusals happened at a cost set by time, not by traffic:

- every field a refusal writes is cut to a few hundred bytes in all (`clip`);
- refusals are grouped by kind (request, error class, session, service, volume); the first of
  a kind in a window is written at once (`refused`), the others are counted and written as one
  entry when the window ends (`refused.repeated`, with the count and the time span);
- at most `kinds` kinds are tracked per window; any further kind counts into one overflow kind.

So a window adds at most 2 x (kinds + 1) entries, whatever the number of requests. Pure:
times come in as `now`; the caller writes what `refuse` and `due` return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_REASON", "RefusalBook", "clip"]

MAX_REASON = 240
_MAX_REQUEST = 100
_MAX_NAME = 64
_OVERFLOW = ("(other kinds)", "", "", "", "")

Entry = tuple[str, dict[str, Any]]  # (event, details) for the audit log


def clip(text: str, limit: int) -> str:
    """`text` as at most `limit` characters of printable UTF-8 (longer text ends with '...')."""
    clean = "".join(c if c.isprintable() else "?" for c in text[: limit + 1])
    clean = clean.encode("utf-8", "replace").decode("utf-8", "replace")
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


@dataclass
class _Tally:
    details: dict[str, Any]
    repeats: int = 0
    since: float = 0.0
    until: float = 0.0


@dataclass
class RefusalBook:
    window: float = 60.0
    kinds: int = 16
    _start: float | None = None
    _tallies: dict[tuple[str, ...], _Tally] = field(default_factory=dict)

    def refuse(
        self,
        now: float,
        *,
        request: str,
        kind: str,
        reason: str,
        session: str | None = None,
        service: str | None = None,
        volume: str | None = None,
    ) -> list[Entry]:
        """Record one refusal; the entries to append now (possibly none)."""
        out = self.due(now)
        if self._start is None:
            self._start = now
        details: dict[str, Any] = {
            "request": clip(request, _MAX_REQUEST),
            "kind": clip(kind, _MAX_NAME),
            "reason": clip(reason, MAX_REASON),
        }
        for name, value in (("session", session), ("service", service), ("volume", volume)):
            if value is not None:
                details[name] = clip(value, _MAX_NAME)
        key = tuple(
            str(details.get(k, "")) for k in ("request", "kind", "session", "service", "volume")
        )
        if key not in self._tallies and len(self._tallies) >= self.kinds:
            key = _OVERFLOW
            details = {
                "request": _OVERFLOW[0],
                "kind": details["kind"],
                "reason": details["reason"],
            }
        tally = self._tallies.get(key)
        if tally is None:
            self._tallies[key] = _Tally(details)
            return [*out, ("refused", details)]
        if tally.repeats == 0:
            tally.since = now
        tally.repeats += 1
        tally.until = now
        return out

    def due(self, now: float, *, force: bool = False) -> list[Entry]:
        """The summaries of a window that has ended (or of the current one, with `force`)."""
        if self._start is None or (not force and now < self._start + self.window):
            return []
        out: list[Entry] = [
            (
                "refused.repeated",
                {**t.details, "count": t.repeats, "since": t.since, "until": t.until},
            )
            for t in self._tallies.values()
            if t.repeats
        ]
        self._start = None
        self._tallies = {}
        return out

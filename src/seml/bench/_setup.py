"""The flow's set-up (keys, platform ids, sessions, signatures, submission) done in-process.

`Flow.agree()` does it the way users do, with ~15 `seml` processes (~8 s): right for the demo,
too slow to repeat for every run of the benchmark, and not what the benchmark measures. This
builds the very same documents with `seml.flow._plan`, signs them with `seml.policy` and submits
them with `seml.cas.CasClient`, so each repetition gets fresh sessions (hence fresh volumes) in
a fraction of a second. Nothing here is timed.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from seml.cas import CasClient
from seml.flow import Flow, FlowLayout, collaboration_session, private_session
from seml.policy import (
    PartyKey,
    load_private_key,
    new_key_pair,
    public_key_text,
    session_hash,
    sign_session,
    write_private_key,
)
from seml.runtime import explain, init_platform_key, platform_of

__all__ = ["FastAgreement", "current_measurement"]


def current_measurement() -> str:
    """What `seml measure` prints now (the runtime's source is re-read: it may have changed
    since this process started, and the services will measure what is on disk)."""
    return explain([], [], fresh=True).value


def _ensure_key(layout: FlowLayout, party: str) -> PartyKey:
    """The party's key pair, created on first use the way `seml keys new` writes it."""
    path = layout.key(party)
    if path.exists():
        return load_private_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = new_key_pair()
    write_private_key(path, key.pem())
    (layout.party(party) / f"{party}.pub").write_text(public_key_text(key.public) + "\n")
    return key


def _ensure_platform(path: Path) -> str:
    return platform_of(path) if path.exists() else init_platform_key(path)


class FastAgreement:
    """Agree on fresh sessions for one `Flow` at a time, against one running CAS."""

    def __init__(self, url: str, fingerprint: str) -> None:
        self._client = CasClient(url, fingerprint)
        self._keys: dict[Path, dict[str, PartyKey]] = {}
        self._platforms: dict[Path, dict[str, str]] = {}

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> FastAgreement:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def identities(self, layout: FlowLayout) -> tuple[dict[str, PartyKey], dict[str, str]]:
        """Party keys and platform ids of a work folder: made once, then reused."""
        if layout.root not in self._keys:
            self._keys[layout.root] = {p: _ensure_key(layout, p) for p in layout.parties}
            platforms = {p: _ensure_platform(layout.platform_key(p)) for p in layout.parties}
            platforms["cloud"] = _ensure_platform(layout.cloud_platform_key)
            self._platforms[layout.root] = platforms
        return self._keys[layout.root], self._platforms[layout.root]

    def agree(self, flow: Flow, measurement: str) -> None:
        """What `flow.agree()` does, for `flow.config.session`: sets `flow.session_hash` and
        `flow.measurement`."""
        lay, c = flow.layout, flow.config
        keys, platforms = self.identities(lay)
        publics = {p: public_key_text(k.public) for p, k in keys.items()}
        shared = collaboration_session(
            name=c.session,
            parties=publics,
            measurement=measurement,
            storage=flow.storage,
            specs=flow.specs(),
            platforms=platforms,
        )
        shared_hash = session_hash(shared)
        self._client.submit_session(shared, [sign_session(shared, p, keys[p]) for p in keys])
        for p in c.parties:
            private = private_session(
                collaboration=c.session,
                collaboration_hash=shared_hash,
                party=p,
                public_key=publics[p],
                measurement=measurement,
                storage=flow.storage,
                platform=platforms[p],
            )
            self._client.submit_session(private, [sign_session(private, p, keys[p])])
        flow.session_hash = shared_hash
        flow.measurement = measurement

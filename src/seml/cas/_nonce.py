"""Single-use, expiring nonces without a database write per nonce.

A nonce is ``random(16) | expiry-ms(8) | HMAC(boot key, random | expiry)[:16]``. The boot key is
fresh for every start of the service, so nonces issued before a restart are simply not
recognised (they cannot be replayed across a restart); the set of used nonces lives in memory
only until they expire.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from seml.errors import AttestationError

__all__ = ["NONCE_LIFETIME", "NonceBook"]

NONCE_LIFETIME = 60.0
_LEN = 40


class NonceBook:
    def __init__(self, lifetime: float = NONCE_LIFETIME) -> None:
        self._key = os.urandom(32)
        self._lifetime = lifetime
        self._used: dict[bytes, float] = {}
        self._next_purge = 0.0

    def issue(self, now: float) -> tuple[bytes, float]:
        expires = now + self._lifetime
        body = os.urandom(16) + int(expires * 1000).to_bytes(8, "big")
        return body + self._mac(body), expires

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:16]

    def consume(self, nonce: bytes, now: float) -> None:
        """Accept a nonce once; AttestationError saying why otherwise."""
        if len(nonce) != _LEN or not hmac.compare_digest(self._mac(nonce[:24]), nonce[24:]):
            raise AttestationError(
                "nonce was not issued by this service (or was issued before it restarted)"
            )
        expires = int.from_bytes(nonce[16:24], "big") / 1000
        if now > expires:
            raise AttestationError("nonce expired; ask for a fresh one")
        if nonce in self._used:
            raise AttestationError("nonce already used (replay)")
        self._used[nonce] = expires
        if now >= self._next_purge:
            self._used = {n: e for n, e in self._used.items() if e >= now}
            self._next_purge = now + self._lifetime

"""One exception root, split by who is at fault.

Every error the library raises on purpose derives from `SemlError`; foreign exceptions (OSError,
botocore, httpx) are converted at the boundary with ``raise ... from e`` so the cause is kept.
The CLI prints the message of a `SemlError` and exits non-zero.
"""


class SemlError(Exception):
    """Root of every error SEML raises on purpose."""

    exit_code = 1


class UsageError(SemlError):
    """The caller asked for something malformed: a bad option, a missing key, an unreadable file."""

    exit_code = 2


class IntegrityError(SemlError):
    """Data failed authentication: it was tampered with, truncated, swapped, or rolled back."""

    exit_code = 3


class PolicyError(SemlError):
    """The request is well formed but a session or policy does not allow it."""

    exit_code = 4


class AttestationError(SemlError):
    """Evidence is invalid, unverifiable, or shows a weakness the session does not tolerate."""

    exit_code = 5


class StorageError(SemlError):
    """Object storage or the local filesystem failed (transport, permissions, missing object)."""

    exit_code = 6


class NetworkError(SemlError):
    """A remote service could not be reached or answered outside the protocol."""

    exit_code = 7

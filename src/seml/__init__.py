"""SEML: multi-party machine learning in an untrusted cloud.

Parties encrypt their data client-side, an attestation service releases keys only to workloads
whose measurement every party agreed to, and the model is trained and published encrypted.
"""

from seml.errors import (
    AttestationError,
    IntegrityError,
    NetworkError,
    PolicyError,
    SemlError,
    StorageError,
    UsageError,
)

__version__ = "0.1.0"

__all__ = [
    "AttestationError",
    "IntegrityError",
    "NetworkError",
    "PolicyError",
    "SemlError",
    "StorageError",
    "UsageError",
    "__version__",
]

"""Training receipts: what one run used and produced, signed by the attestation service, and
verifiable offline (`verify_receipt`: bytes and keys in, a structured verdict out).

Also the completion reports attested services send (`CompletionReport`, `Claims`): the
receipt is made from them (a workload writes its claims with `seml._claims.add_claims`).
"""

from seml.receipt._claims import (
    Claims,
    CompletionReport,
    InputClaim,
    PushClaim,
    TrainClaim,
)
from seml.receipt._model import (
    FORMAT,
    SIMULATED_NOTICE,
    AuditRef,
    InputRecord,
    ModelFile,
    ModelRecord,
    PrivateSession,
    ReceiptBody,
    ReleaseTerms,
    ServiceRecord,
    SessionBinding,
    SignedReceipt,
    SpecRecord,
    TrainingRecord,
    VolumeStep,
    model_digest,
    receipt_id,
    receipt_message,
    sign_receipt,
)
from seml.receipt._verify import (
    Check,
    CheckStatus,
    LocalFile,
    ManifestSeen,
    ReceiptCheck,
    parse_sync_state,
    verify_receipt,
)

__all__ = [
    "FORMAT",
    "SIMULATED_NOTICE",
    "AuditRef",
    "Check",
    "CheckStatus",
    "Claims",
    "CompletionReport",
    "InputClaim",
    "InputRecord",
    "LocalFile",
    "ManifestSeen",
    "ModelFile",
    "ModelRecord",
    "PrivateSession",
    "PushClaim",
    "ReceiptBody",
    "ReceiptCheck",
    "ReleaseTerms",
    "ServiceRecord",
    "SessionBinding",
    "SignedReceipt",
    "SpecRecord",
    "TrainClaim",
    "TrainingRecord",
    "VolumeStep",
    "model_digest",
    "parse_sync_state",
    "receipt_id",
    "receipt_message",
    "sign_receipt",
    "verify_receipt",
]

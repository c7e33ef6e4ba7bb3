"""Evidence from real TEEs, behind `EvidenceProvider`, and the choice between them.

Thin adapters over the two interfaces Linux offers a workload for getting a quote:

* **Gramine** (SGX enclaves): write the 64 bytes of report data to
  ``/dev/attestation/user_report_data``, read the DCAP quote from ``/dev/attestation/quote``;
  ``/dev/attestation/attestation_type`` says ``dcap`` when DCAP quoting is configured.
* **configfs-tsm** (Linux >= 6.7; TDX and SEV-SNP guests): make a directory under
  ``/sys/kernel/config/tsm/report``, write the report data to ``inblob``, read the quote from
  ``outblob``; ``provider`` names the backend (``tdx_guest``, ``sev_guest``) and ``generation``
  counts writes, which detects another process racing on the same entry. For SEV-SNP,
  ``privlevel`` (written first) is the VMPL the report is requested at, and ``auxblob`` holds
  the certificate table the host provides (VCEK or VLEK, ASK, ARK), which the envelope carries.

No machine here has a TEE, so both are tested on constructed directories only; the roots are
parameters so tests can point them at a temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from seml.attest._evidence import Evidence, EvidenceProvider, TeeType
from seml.attest._simulation import SimulationProvider
from seml.errors import AttestationError, UsageError

__all__ = [
    "GRAMINE_ROOT",
    "TSM_REPORT_ROOT",
    "ConfigfsTsmProvider",
    "GramineProvider",
    "select_provider",
]

GRAMINE_ROOT = Path("/dev/attestation")
TSM_REPORT_ROOT = Path("/sys/kernel/config/tsm/report")

_TSM_PROVIDERS = {"tdx_guest": TeeType.TDX_DCAP, "sev_guest": TeeType.SNP}
# GUIDs of the SEV-SNP certificate table (GHCB spec), in the order the envelope wants them, as
# the table stores them (uuid.UUID(...).bytes_le, written out: `uuid` imports `platform`, which
# every `seml run` would pay for).
_SNP_CERT_GUIDS = {
    bytes.fromhex("8d75da6364e66445adc5f4b93be8accd"): "VCEK",  # 63da758d-e664-4564-adc5-...
    bytes.fromhex("c24b07a85aa23e48aae639c045a0b8a1"): "VLEK",  # a8074bc2-a25a-483e-aae6-...
    bytes.fromhex("79b3b74aacbbe44fa02f05aef327c782"): "ASK",  # 4ab7b379-bbac-4fe4-a02f-...
    bytes.fromhex("a406b4c003a8524997433fb6014cd0ae"): "ARK",  # c0b406a4-a803-4952-9743-...
}
_SNP_CERT_ORDER = ("VCEK", "VLEK", "ASK", "ARK")


def _check_report_data(report_data: bytes) -> None:
    if len(report_data) != 64:
        raise UsageError(f"report data must be 64 bytes, got {len(report_data)}")


class GramineProvider:
    """SGX DCAP quotes from inside a Gramine enclave via its ``/dev/attestation`` files."""

    def __init__(self, root: Path = GRAMINE_ROOT) -> None:
        self.root = root

    @classmethod
    def available(cls, root: Path = GRAMINE_ROOT) -> bool:
        try:
            return (root / "attestation_type").read_text().strip() == "dcap"
        except OSError:
            return False

    def evidence(self, report_data: bytes) -> Evidence:
        _check_report_data(report_data)
        try:
            kind = (self.root / "attestation_type").read_text().strip()
            if kind != "dcap":
                raise AttestationError(
                    f"Gramine at {self.root} is configured for {kind!r} attestation, not dcap"
                )
            (self.root / "user_report_data").write_bytes(report_data)
            quote = (self.root / "quote").read_bytes()
        except OSError as e:
            raise AttestationError(f"Gramine quote from {self.root} failed: {e}") from e
        if not quote:
            raise AttestationError(f"Gramine returned an empty quote from {self.root / 'quote'}")
        return Evidence(tee=TeeType.SGX_DCAP, quote=quote)


class ConfigfsTsmProvider:
    """TDX DCAP quotes and SEV-SNP reports through the kernel's configfs-tsm interface.

    `privlevel` is the SNP VMPL to request the report at (0 = most privileged); a session
    decides which VMPLs it accepts.
    """

    def __init__(self, root: Path = TSM_REPORT_ROOT, *, privlevel: int = 0) -> None:
        if not 0 <= privlevel <= 3:
            raise UsageError(f"an SEV-SNP privilege level is 0 to 3, got {privlevel}")
        self.root = root
        self.privlevel = privlevel

    @classmethod
    def available(cls, root: Path = TSM_REPORT_ROOT) -> bool:
        return root.is_dir() and os.access(root, os.W_OK)

    def evidence(self, report_data: bytes) -> Evidence:
        _check_report_data(report_data)
        entry = self.root / f"seml-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            _make_entry(entry)
        except OSError as e:
            raise AttestationError(f"cannot create configfs-tsm report {entry}: {e}") from e
        try:
            return self._read(entry, report_data)
        except OSError as e:
            raise AttestationError(f"configfs-tsm report {entry} failed: {e}") from e
        finally:
            # configfs may already have dropped the entry; nothing else to clean up then.
            with contextlib.suppress(OSError):
                entry.rmdir()

    def _read(self, entry: Path, report_data: bytes) -> Evidence:
        provider = (entry / "provider").read_text().strip()
        tee = _TSM_PROVIDERS.get(provider)
        if tee is None:
            raise AttestationError(
                f"configfs-tsm provider {provider!r} is not supported (tdx_guest, sev_guest)"
            )
        if tee is TeeType.SNP:
            _write_blob(entry / "privlevel", f"{self.privlevel}\n".encode())
        before = int((entry / "generation").read_text().strip() or 0)
        _write_blob(entry / "inblob", report_data)
        quote = (entry / "outblob").read_bytes()
        aux = (entry / "auxblob").read_bytes() if tee is TeeType.SNP else b""
        after = int((entry / "generation").read_text().strip() or 0)
        if after != before + 1:
            raise AttestationError(
                f"configfs-tsm report {entry} was written by someone else meanwhile "
                f"(generation {before} -> {after})"
            )
        if not quote:
            raise AttestationError(f"configfs-tsm returned an empty quote from {entry}")
        if tee is TeeType.SNP:
            return _snp_evidence(quote, aux, entry)
        return Evidence(tee=tee, quote=quote)


def _snp_evidence(outblob: bytes, auxblob: bytes, entry: Path) -> Evidence:
    """The SNP report from outblob and the host's certificates from auxblob, as an envelope."""
    from seml.attest._snp import REPORT_SIZE, snp_collateral  # the SNP parser: only on SNP

    if len(outblob) == REPORT_SIZE:
        report = outblob
    elif len(outblob) >= 0x20 + REPORT_SIZE and int.from_bytes(outblob[4:8], "little") == (
        REPORT_SIZE
    ):
        report = outblob[0x20 : 0x20 + REPORT_SIZE]  # MSG_REPORT_RSP: status, size, reserved
    else:
        raise AttestationError(f"configfs-tsm {entry} returned no SEV-SNP report")
    certs = _snp_cert_table(auxblob)
    if not certs:
        raise AttestationError(
            f"configfs-tsm {entry} returned no certificates (auxblob empty): the host must "
            "provide the VCEK or VLEK with the report (SNP extended guest request)"
        )
    chain = b"".join(_pem(certs[k]) for k in _SNP_CERT_ORDER if k in certs)
    return Evidence(tee=TeeType.SNP, quote=report, collateral=snp_collateral(chain))


def _snp_cert_table(table: bytes) -> dict[str, bytes]:
    """GUID -> certificate from the GHCB certificate table (entries end with a zero GUID)."""
    found: dict[str, bytes] = {}
    for at in range(0, len(table) - 23, 24):
        guid = table[at : at + 16]
        if not any(guid):
            break
        offset = int.from_bytes(table[at + 16 : at + 20], "little")
        length = int.from_bytes(table[at + 20 : at + 24], "little")
        if offset + length > len(table):
            raise AttestationError("the SEV-SNP certificate table points past its end")
        name = _SNP_CERT_GUIDS.get(guid)
        if name is not None:
            found[name] = table[offset : offset + length]
    return found


def _pem(der: bytes) -> bytes:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n".encode()


# configfs does its work inside mkdir and write; tests replace these two with a fake kernel.
def _make_entry(path: Path) -> None:
    path.mkdir()


def _write_blob(path: Path, data: bytes) -> None:
    with open(path, "wb", buffering=0) as f:
        f.write(data)


def select_provider(
    *,
    simulation_measurement: str | None = None,
    allow_simulation: bool = False,
    platform_key: bytes | None = None,
    gramine_root: Path = GRAMINE_ROOT,
    tsm_root: Path = TSM_REPORT_ROOT,
) -> EvidenceProvider:
    """Hardware evidence when a TEE interface is present; simulation only when asked for.

    Without hardware and without `allow_simulation`, refuse: silently falling back to software
    evidence would hide that nothing is protected.
    """
    if GramineProvider.available(gramine_root):
        return GramineProvider(gramine_root)
    if ConfigfsTsmProvider.available(tsm_root):
        return ConfigfsTsmProvider(tsm_root)
    if not allow_simulation:
        raise AttestationError(
            f"no TEE found (neither Gramine at {gramine_root} nor configfs-tsm at {tsm_root}); "
            "ask for simulation explicitly to use software evidence that proves nothing"
        )
    if simulation_measurement is None:
        raise UsageError("simulation was asked for but no simulated measurement was given")
    return SimulationProvider(simulation_measurement, platform_key=platform_key)

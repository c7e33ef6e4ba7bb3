"""Evidence from real TEEs, behind `EvidenceProvider`, and the choice between them.

Thin adapters over the two interfaces Linux offers a workload for getting a quote:

* **Gramine** (SGX enclaves): write the 64 bytes of report data to
  ``/dev/attestation/user_report_data``, read the DCAP quote from ``/dev/attestation/quote``;
  ``/dev/attestation/attestation_type`` says ``dcap`` when DCAP quoting is configured.
* **configfs-tsm** (Linux >= 6.7; TDX guests, also SEV-SNP): make a directory under
  ``/sys/kernel/config/tsm/report``, write the report data to ``inblob``, read the quote from
  ``outblob``; ``provider`` names the backend (``tdx_guest``) and ``generation`` counts writes,
  which detects another process racing on the same entry.

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

_TSM_PROVIDERS = {"tdx_guest": TeeType.TDX_DCAP}


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
    """TDX DCAP quotes through the kernel's configfs-tsm report interface."""

    def __init__(self, root: Path = TSM_REPORT_ROOT) -> None:
        self.root = root

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
                f"configfs-tsm provider {provider!r} is not supported (only tdx_guest)"
            )
        before = int((entry / "generation").read_text().strip() or 0)
        _write_blob(entry / "inblob", report_data)
        quote = (entry / "outblob").read_bytes()
        after = int((entry / "generation").read_text().strip() or 0)
        if after != before + 1:
            raise AttestationError(
                f"configfs-tsm report {entry} was written by someone else meanwhile "
                f"(generation {before} -> {after})"
            )
        if not quote:
            raise AttestationError(f"configfs-tsm returned an empty quote from {entry}")
        return Evidence(tee=tee, quote=quote)


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

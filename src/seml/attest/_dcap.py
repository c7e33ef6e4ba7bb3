"""Intel DCAP quotes (SGX enclaves, TDX guests), verified for real with `dcap-qvl`.

The verifier takes the quote, the collateral (PCK CRLs, TCB info, QE identity and their issuer
chains, as Intel's PCS serves them) and an explicit `now`; dcap-qvl checks the signature chain up
to Intel's root and evaluates the platform's TCB status. This module turns its result into a
`Verdict` whose weaknesses a session can tolerate, and its failures into `AttestationError`s.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import re
from typing import Any

from seml.attest._evidence import (
    WEAKNESS_CONFIGURATION,
    WEAKNESS_DEBUG,
    WEAKNESS_OUT_OF_DATE,
    WEAKNESS_REVOKED,
    WEAKNESS_SW_HARDENING,
    Evidence,
    TeeType,
    Verdict,
)
from seml.errors import AttestationError

__all__ = ["DEFAULT_PCCS_URL", "DcapVerifier", "weaknesses_for_status"]

DEFAULT_PCCS_URL = "https://api.trustedservices.intel.com"

_STATUS_WEAKNESSES: dict[str, frozenset[str]] = {
    "UpToDate": frozenset(),
    "SWHardeningNeeded": frozenset({WEAKNESS_SW_HARDENING}),
    "ConfigurationNeeded": frozenset({WEAKNESS_CONFIGURATION}),
    "ConfigurationAndSWHardeningNeeded": frozenset({WEAKNESS_CONFIGURATION, WEAKNESS_SW_HARDENING}),
    "OutOfDate": frozenset({WEAKNESS_OUT_OF_DATE}),
    "OutOfDateConfigurationNeeded": frozenset({WEAKNESS_OUT_OF_DATE, WEAKNESS_CONFIGURATION}),
    "Revoked": frozenset({WEAKNESS_REVOKED}),
}

# Quote header tee_type values (Intel DCAP quote layout).
_HEADER_TEE = {0x00000000: TeeType.SGX_DCAP, 0x00000081: TeeType.TDX_DCAP}
_SGX_ATTRIBUTE_DEBUG = 0x02  # ATTRIBUTES.DEBUG, bit 1 of the first byte
_TDX_ATTRIBUTE_DEBUG = 0x01  # TD_ATTRIBUTES.DEBUG, bit 0 of the first byte
_FETCH_TIMEOUT_S = 30.0


def weaknesses_for_status(status: str) -> frozenset[str]:
    """The weaknesses a TCB status implies; an unknown status is refused, not guessed at."""
    try:
        return _STATUS_WEAKNESSES[status]
    except KeyError:
        raise AttestationError(f"unknown TCB status {status!r} from the DCAP verifier") from None


class DcapVerifier:
    """Verifies `sgx-dcap` and `tdx-dcap` evidence.

    Collateral comes from the envelope; when it has none and `collateral_fetch` is set, it is
    fetched from `pccs_url` (network I/O, so off by default).
    """

    def __init__(self, *, collateral_fetch: bool = False, pccs_url: str = DEFAULT_PCCS_URL) -> None:
        self._collateral_fetch = collateral_fetch
        self._pccs_url = pccs_url

    def verify(self, evidence: Evidence, *, now: int) -> Verdict:
        import dcap_qvl

        if evidence.tee not in (TeeType.SGX_DCAP, TeeType.TDX_DCAP):
            raise AttestationError(f"not DCAP evidence: {evidence.tee.value}")
        tee = evidence.tee.value
        quote = evidence.quote
        try:
            header_tee = dcap_qvl.parse_quote(quote).header.tee_type
        except ValueError as e:
            raise AttestationError(f"{tee} quote cannot be parsed: {_reason(e)}") from e
        actual = _HEADER_TEE.get(header_tee)
        if actual is not evidence.tee:
            found = actual.value if actual else f"tee type {header_tee:#x}"
            raise AttestationError(f"envelope says {tee} but the quote is {found}")
        collateral = self._collateral(evidence)
        try:
            report = dcap_qvl.verify(quote, collateral, now)
        except ValueError as e:
            reason = _reason(e)
            if "Expired" in reason:
                reason = f"{_expired_collateral(collateral, now)} ({reason})"
            raise AttestationError(f"{tee} quote refused: {reason}") from e
        verdict = _verdict(
            evidence.tee, report.status, tuple(report.advisory_ids), report.to_json()
        )
        ppid = bytes(getattr(report, "ppid", b"") or b"")
        if ppid and any(ppid):
            # The platform's provisioning ID (from the PCK certificate): which machine this is.
            verdict.details["platform"] = "ppid:" + ppid.hex()
        return verdict

    def _collateral(self, evidence: Evidence) -> Any:
        import dcap_qvl

        tee = evidence.tee.value
        if evidence.collateral is not None:
            try:
                return dcap_qvl.QuoteCollateralV3.from_json(evidence.collateral)
            except ValueError as e:
                raise AttestationError(f"{tee} collateral is malformed: {_reason(e)}") from e
        if not self._collateral_fetch:
            raise AttestationError(f"{tee} evidence carries no collateral and fetching is off")
        # dcap-qvl fetches asynchronously; run it on a private loop in a worker thread so this
        # also works when called from inside a running event loop (the CAS).
        import asyncio

        def fetch() -> Any:
            return asyncio.run(dcap_qvl.get_collateral(self._pccs_url, evidence.quote))

        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            try:
                return pool.submit(fetch).result(timeout=_FETCH_TIMEOUT_S)
            except (ValueError, RuntimeError, OSError, TimeoutError) as e:
                raise AttestationError(
                    f"could not fetch {tee} collateral from {self._pccs_url}: {_reason(e)}"
                ) from e


def _verdict(tee: TeeType, status: str, advisories: tuple[str, ...], report_json: str) -> Verdict:
    weaknesses = set(weaknesses_for_status(status))
    if status == "Revoked":
        raise AttestationError(f"{tee.value} quote refused: the platform's TCB is revoked")
    try:
        body: dict[str, Any] = json.loads(report_json)["report"]
        (kind, fields), *_ = body.items()
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise AttestationError(f"unexpected report from the DCAP verifier: {e}") from e
    if (kind == "SgxEnclave") != (tee is TeeType.SGX_DCAP):
        raise AttestationError(f"envelope says {tee.value} but the verified report is {kind}")
    details = {k: _text(v) for k, v in fields.items() if not k.startswith("reserved")}
    if tee is TeeType.SGX_DCAP:
        measurement = details.pop("mr_enclave")
        details["mrsigner"] = details.pop("mr_signer")
        debug = bytes.fromhex(details["attributes"])[0] & _SGX_ATTRIBUTE_DEBUG
    else:
        measurement = details.pop("mr_td")
        for i in range(4):
            details[f"rtmr{i}"] = details.pop(f"rt_mr{i}")
        debug = bytes.fromhex(details["td_attributes"])[0] & _TDX_ATTRIBUTE_DEBUG
    if debug:
        weaknesses.add(WEAKNESS_DEBUG)
    details["report_kind"] = kind
    report_data = bytes.fromhex(details.pop("report_data"))
    return Verdict(
        tee=tee,
        measurement=measurement.lower(),
        report_data=report_data,
        tcb_status=status,
        weaknesses=frozenset(weaknesses),
        advisories=advisories,
        details=details,
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _reason(e: BaseException) -> str:
    """dcap-qvl's multi-line anyhow chain as one line: 'outer: cause: cause'."""
    text = re.sub(r"^Verification failed:\s*", "", str(e).strip())
    parts = [p.strip() for p in re.split(r"\n\s*Caused by:\s*\n", text)]
    lines = [" ".join(line.split()) for p in parts for line in p.splitlines() if line.strip()]
    cleaned = [re.sub(r"^\d+:\s*", "", line) for line in lines]
    return ": ".join(cleaned) or type(e).__name__


def _expired_collateral(collateral: Any, now: int) -> str:
    """Name each collateral item that has expired at `now` (dcap-qvl reports only the first)."""
    from cryptography import x509

    at = dt.datetime.fromtimestamp(now, dt.UTC)
    expired: list[str] = []
    for attr in ("root_ca_crl", "pck_crl"):
        try:
            crl = x509.load_der_x509_crl(getattr(collateral, attr))
        except ValueError:
            continue
        next_update = crl.next_update_utc
        if next_update is not None and next_update < at:
            name = crl.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            issuer = str(name[0].value) if name else attr
            expired.append(f"CRL of {issuer} (next update {next_update:%Y-%m-%dT%H:%M:%SZ})")
    for label, attr in (("TCB info", "tcb_info"), ("QE identity", "qe_identity")):
        try:
            raw = json.loads(getattr(collateral, attr))["nextUpdate"]
            next_update = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if next_update < at:
            expired.append(f"{label} (next update {next_update:%Y-%m-%dT%H:%M:%SZ})")
    found = "; ".join(expired) or "no item past its next update found"
    return f"collateral expired at {at:%Y-%m-%dT%H:%M:%SZ}: {found}"

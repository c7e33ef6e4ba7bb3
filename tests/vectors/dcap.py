"""The real Intel DCAP quotes in `tests/vectors/quotes/` (values from its README)."""

from __future__ import annotations

from dataclasses import dataclass

from seml.attest import Evidence, TeeType
from vectors import vector_bytes, vector_text

__all__ = ["QUOTES", "SGX", "SGX_MRSIGNER", "TDX", "TDX_RTMR0", "QuoteVector"]

SET = "quotes"


@dataclass(frozen=True)
class QuoteVector:
    name: str
    tee: TeeType
    verify_at: int
    status: str
    advisories: tuple[str, ...]
    measurement: str
    signed_len: int  # header (48) + report body: what the attestation key signs

    def quote(self) -> bytes:
        return vector_bytes(SET, f"{self.name}_quote")

    def collateral(self) -> str:
        return vector_text(SET, f"{self.name}_quote_collateral.json")

    def evidence(self) -> Evidence:
        return Evidence(tee=self.tee, quote=self.quote(), collateral=self.collateral())


SGX = QuoteVector(
    name="sgx",
    tee=TeeType.SGX_DCAP,
    verify_at=1751624924,
    status="ConfigurationAndSWHardeningNeeded",
    advisories=("INTEL-SA-00289", "INTEL-SA-00615"),
    measurement="33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb",
    signed_len=48 + 384,
)
TDX = QuoteVector(
    name="tdx",
    tee=TeeType.TDX_DCAP,
    verify_at=1751624655,
    status="UpToDate",
    advisories=(),
    measurement=(
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407"
        "de03ae6dc5f87f27428b2538873118b7"
    ),
    signed_len=48 + 584,
)
QUOTES = (SGX, TDX)
SGX_MRSIGNER = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
TDX_RTMR0 = (
    "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c"
    "48aca29b220b80b6a540cf994b9bc9c0"
)

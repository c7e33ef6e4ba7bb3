"""The recorded SEV-SNP, Azure and NVIDIA evidence in tests/vectors/, with its expected values.

Values come from tests/vectors/snp/README.md and tests/vectors/nvidia/README.md. A missing
vector file FAILS the test that needs it (a clone is the whole project; nothing is skipped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from vectors import vector_bytes

# 2025-06-01T00:00:00Z: inside every certificate window of both READMEs.
VERIFY_AT = 1748736000
# 2026-01-01T00:00:00Z: after the VLEK expired (2025-12-10).
AFTER_VLEK_EXPIRY = 1767225600


def vector(folder: str, name: str) -> bytes:
    """The bytes of tests/vectors/<folder>/<name> (a missing file fails the test)."""
    return vector_bytes(folder, name)


@dataclass(frozen=True)
class SnpVector:
    name: str
    report_file: str
    key_file: str
    version: int
    key_kind: str
    measurement: str
    report_data: str
    tcb: str
    chip_id: str
    policy: str
    vmpl: int
    firmware: str
    product: str

    def report(self) -> bytes:
        data = vector("snp", self.report_file)
        if self.report_file.endswith("hcl_report.bin"):
            return data[0x20 : 0x20 + 1184]  # the SNP report inside Azure's HCL report
        return data

    def key(self) -> bytes:
        return vector("snp", self.key_file)


SNP_VECTORS = (
    SnpVector(
        name="milan_vcek",
        report_file="milan_vcek_report.bin",
        key_file="milan_vcek.der",
        version=2,
        key_kind="VCEK",
        measurement="7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d"
        "3e1a0dc39b2c60bd95b9c480cd81841f",
        report_data="d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c64581"
        "0b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd",
        tcb="3/0/8/115",
        chip_id="d49554ec717f4e5b0fe6b143bcf0405bd7ae304727edf46603f2a76aef6a3abc"
        "15d7af38db757039029f0efacfd08e244324884738c72b082e2f87a44d541eb6",
        policy="0x30000",
        vmpl=0,
        firmware="1.52.4",
        product="Milan",
    ),
    SnpVector(
        name="milan_vlek",
        report_file="milan_vlek_report.bin",
        key_file="milan_vlek.der",
        version=3,
        key_kind="VLEK",
        measurement="8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4"
        "e8c9af857f5ceeb5a493df2a570d7bf0",
        report_data="819770b7e6ea6df8dd8fd4dd146b073c0bf4f3ce5b0977ecac486e3a05ed1bd5"
        "4e2a7ac1f5d1ca02e7d7d5ef9f73b8574fd9359e3a480d741a4478e8a7bc27ca",
        tcb="4/0/24/217",
        chip_id="00" * 64,
        policy="0x30000",
        vmpl=1,
        firmware="1.55.29",
        product="Milan",
    ),
    SnpVector(
        name="genoa_azure",
        report_file="genoa_azure_hcl_report.bin",
        key_file="genoa_azure_vcek.pem",
        version=3,
        key_kind="VCEK",
        measurement="f57dc09a507c6ecd82369bffb600f0003792f4d99bc26e985ec0c266fc34faf3"
        "706faf814c9e61065768a6ff917c89ae",
        report_data="b581f12e29a2d7d64e5e0b738d563879a78b51c644d0fa0cce02b48699f6bf5f" + "00" * 32,
        tcb="10/0/23/84",
        chip_id="0506ffba875e939c2729d20c74eb72b4c5ba6bf7ea1faaa640141f12c6d64782"
        "fb487f68ce69dcd021e914cc0d9244327bc121f0242d6470903ad1d4aaea4ad1",
        policy="0x3001f",
        vmpl=0,
        firmware="1.55.40",
        product="Genoa",
    ),
)
MILAN_VCEK, MILAN_VLEK, GENOA_AZURE = SNP_VECTORS

AZURE_QUOTE_NONCE = bytes.fromhex(
    "0218488bae25d2509232bf676f1a66a30d7372add909109b36016ef136f2938c"
    "a05475f8b46094de6b64270ea35d950f"
)


def azure_pcrs() -> list[bytes]:
    document = json.loads(vector("snp", "genoa_azure_tpm_pcrs.json"))
    return [bytes.fromhex(v) for v in document["pcrs_sha256"]]


@dataclass(frozen=True)
class GpuVector:
    name: str
    nonce: str
    responder_nonce: str
    driver: str
    vbios: str
    fwid: str

    def report(self) -> bytes:
        return vector("nvidia", f"{self.name}_report.bin")

    def chain(self) -> bytes:
        return vector("nvidia", f"{self.name}_certchain.pem")


_REQUEST_NONCE = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"
GPU_VECTORS = (
    GpuVector(
        name="hopper",
        nonce=_REQUEST_NONCE,
        responder_nonce="b4b8a06aaaa35542839388e159d447a5d6f6194998fd86513e2d591ccf640985",
        driver="550.90.07",
        vbios="96.00.9f.00.01",
        fwid="f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b4721cec004f7275494ba94bb5cdfdb30"
        "55ee051762b1f75d",
    ),
    GpuVector(
        name="blackwell",
        nonce=_REQUEST_NONCE,
        responder_nonce="53f8bcd3ab32ddfaf9b853658e92599b20059e3baf906c986ebb09b19c71c22c",
        driver="575.32",
        vbios="97.00.88.00.0f",
        fwid="d090cab1b6e6ffddca83d1781e25b3f040fa1f3c7608230cb5f41b1c1b99f5f748349e59d0ef8eb8"
        "30c9bc79ccf77502",
    ),
)
HOPPER, BLACKWELL = GPU_VECTORS
HOPPER_RIMS = (
    "hopper_driver_rim_test_no_gpu.swidtag",
    "hopper_vbios_rim_1010_0200_882_96005E0001_test_no_gpu.swidtag",
)

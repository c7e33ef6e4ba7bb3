"""The session document: a pydantic schema, strict (unknown keys are errors), with cross-checks.

A session is what the parties agree on. It names the parties and their Ed25519 keys, who must
sign its creation and its updates, which evidence weaknesses are tolerated, which secrets and
volumes exist and which services may read them, and, per service, the measurements allowed to
receive its configuration.

Secret placeholders in a service's environment and injected files use one syntax:
``$$SEML::NAME$$`` (the secret's default text form), ``$$SEML::NAME.key$$`` / ``.crt`` / ``.pub``
(PEM parts of ed25519 / x509 secrets) and an optional encoding suffix ``:hex`` / ``:base64``
(binary values default to hex), e.g. ``$$SEML::data_key:base64$$``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

from seml._environ import code_loading
from seml._paths import check_layout
from seml.policy._rules import ApprovalRule

__all__ = [
    "ENV_NAME_PATTERN",
    "NAME_PATTERN",
    "PLACEHOLDER",
    "Approval",
    "AzureSnpPlatform",
    "ConfidentialVm",
    "Export",
    "NvidiaGpu",
    "Placeholder",
    "Release",
    "Secret",
    "SecretImport",
    "SecretKind",
    "Security",
    "Service",
    "Session",
    "SnpPlatform",
    "SnpTcb",
    "Storage",
    "TdxPlatform",
    "Volume",
    "VolumeImport",
    "placeholders_in",
]

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
SESSION_HASH_PATTERN = r"^sha256:[0-9a-f]{64}$"
MEASUREMENT_PATTERN = r"^[0-9a-f]{32,128}$"
# A simulated platform key's sha256, an Intel platform's PPID from its PCK certificate, or an
# AMD chip's CHIP_ID from its SEV-SNP reports.
PLATFORM_PATTERN = r"^(sha256:[0-9a-f]{64}|ppid:[0-9a-f]{32}|snp-chip:[0-9a-f]{128})$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
SessionHash = Annotated[str, StringConstraints(pattern=SESSION_HASH_PATTERN)]
Measurement = Annotated[str, StringConstraints(pattern=MEASUREMENT_PATTERN)]
Platform = Annotated[str, StringConstraints(pattern=PLATFORM_PATTERN)]
Hex48 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{96}$")]  # SNP MEASUREMENT, MRTD, RTMR
Hex32 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]  # HOST_DATA, a SHA-256 PCR
Version = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z.]{1,32}$")]

PLACEHOLDER = re.compile(
    r"\$\$SEML::(?P<name>[A-Za-z][A-Za-z0-9_-]{0,63})(?:\.(?P<part>key|crt|pub))?"
    r"(?::(?P<encoding>hex|base64))?\$\$"
)
# Anything that starts like a placeholder but does not parse is an error, not literal text:
# a typo must not silently ship the placeholder string to the workload.
_PLACEHOLDER_START = re.compile(r"\$\$SEML")


class Placeholder(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    part: Literal["key", "crt", "pub"] | None = None
    encoding: Literal["hex", "base64"] | None = None


def placeholders_in(text: str) -> list[Placeholder]:
    """Every placeholder in `text`; raises ValueError for a malformed one."""
    found = [Placeholder.model_validate(m.groupdict()) for m in PLACEHOLDER.finditer(text)]
    if len(_PLACEHOLDER_START.findall(text)) != len(found):
        raise ValueError(
            "malformed secret placeholder (expected $$SEML::NAME$$, $$SEML::NAME.key$$, "
            "$$SEML::NAME:base64$$ ...)"
        )
    return found


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SecretKind(StrEnum):
    KEY = "key"  # random symmetric key, `size` bytes (default 32)
    ASCII = "ascii"  # random printable string, `size` characters (default 32)
    BINARY = "binary"  # random bytes, `size` bytes (default 32)
    ED25519 = "ed25519"  # Ed25519 key pair
    X509 = "x509"  # EC P-256 key and self-signed certificate
    PROVIDED = "provided"  # a value a party sends (encrypted to the service)


class Export(_Strict):
    """Consent to hand a secret or volume to named services of another, exactly pinned, session."""

    session: Name
    session_hash: SessionHash
    services: list[Name] = Field(min_length=1)


class SecretImport(_Strict):
    session: Name
    secret: Name


class VolumeImport(_Strict):
    session: Name
    volume: Name


class Release(_Strict):
    """A model key that waits for its data owners: `approve` is the rule the owners' signed
    decisions about a receipt's model must meet before any reader other than `producers` (the
    services that make and publish the model, e.g. `publish`) gets the secret."""

    approve: ApprovalRule
    producers: list[Name] = Field(min_length=1)


class Secret(_Strict):
    name: Name
    kind: SecretKind | None = None
    size: int | None = Field(default=None, ge=16, le=4096)
    common_name: str | None = Field(default=None, min_length=1, max_length=64)
    provided_by: Name | None = None
    readers: list[Name] = Field(default_factory=list)
    export: list[Export] = Field(default_factory=list)
    import_: SecretImport | None = Field(default=None, alias="import")
    release: Release | None = None

    @model_serializer(mode="wrap")
    def _without_absent_release(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Sessions written before `release` existed keep their hashes: absent is not `null`.
        data = handler(self)
        if isinstance(data, dict) and data.get("release", 0) is None:
            del data["release"]
        return data

    @model_validator(mode="after")
    def _kind_rules(self) -> Secret:
        if self.import_ is not None:
            if self.kind is not None or self.size is not None or self.export:
                raise ValueError("an imported secret takes no kind, size or export")
            if self.release is not None:
                raise ValueError("release applies to the session that owns the secret")
            return self
        if self.kind is None:
            raise ValueError("a secret needs a kind (key, ascii, binary, ed25519, x509, provided)")
        if self.size is not None and self.kind not in (
            SecretKind.KEY,
            SecretKind.ASCII,
            SecretKind.BINARY,
        ):
            raise ValueError(f"size does not apply to kind {self.kind.value}")
        if self.common_name is not None and self.kind is not SecretKind.X509:
            raise ValueError("common_name applies only to kind x509")
        if (self.provided_by is None) != (self.kind is not SecretKind.PROVIDED):
            raise ValueError("provided_by is required for kind provided, and only for it")
        return self


class Volume(_Strict):
    name: Name
    export: list[Export] = Field(default_factory=list)
    import_: VolumeImport | None = Field(default=None, alias="import")

    @model_validator(mode="after")
    def _one_direction(self) -> Volume:
        if self.import_ is not None and self.export:
            raise ValueError("a volume is either imported or owned (and exported), not both")
        return self


def _distinct_values(value: list[Any], what: str) -> list[Any]:
    if len(set(value)) != len(value):
        raise ValueError(f"{what} lists a value twice")
    return value


class SnpTcb(_Strict):
    """A minimum SEV-SNP TCB: each component's security patch level must be at least this."""

    bootloader: int = Field(ge=0, le=255)
    tee: int = Field(ge=0, le=255)
    snp: int = Field(ge=0, le=255)
    microcode: int = Field(ge=0, le=255)


class SnpPlatform(_Strict):
    """The AMD SEV-SNP confidential VMs a service may run in.

    `measurements` are launch MEASUREMENTs (firmware, kernel, initrd, command line of the VM
    image that contains seml); `vmpl` the privilege levels the report may come from; `min_tcb`
    the lowest platform TCB; `host_data`, if given, the HOST_DATA values allowed.
    """

    measurements: list[Hex48] = Field(min_length=1)
    min_tcb: SnpTcb | None = None
    vmpl: list[Annotated[int, Field(ge=0, le=3)]] = Field(default_factory=lambda: [0], min_length=1)
    host_data: list[Hex32] | None = Field(default=None, min_length=1)

    @field_validator("measurements", "vmpl", "host_data")
    @classmethod
    def _distinct(cls, value: list[Any] | None) -> list[Any] | None:
        return None if value is None else _distinct_values(value, "the list")


class AzureSnpPlatform(SnpPlatform):
    """An Azure confidential VM: its SNP launch (Azure's paravisor firmware) as for SNP, and the
    vTPM's PCRs (boot chain: bootloader, kernel, command line) pinned by index."""

    pcrs: dict[Annotated[int, Field(ge=0, le=23)], list[Hex32]] = Field(default_factory=dict)

    @field_validator("pcrs")
    @classmethod
    def _each_pcr(cls, value: dict[int, list[str]]) -> dict[int, list[str]]:
        for index, allowed in value.items():
            if not allowed:
                raise ValueError(f"pcrs.{index}: an empty allow-list never means any value")
            _distinct_values(allowed, f"pcrs.{index}")
        return value


class TdxPlatform(_Strict):
    """The Intel TDX confidential VMs a service may run in: MRTD (the TD's firmware) and,
    if given, the runtime measurement registers (RTMR 0-3: firmware config, kernel, ...)."""

    mrtd: list[Hex48] = Field(min_length=1)
    rtmr: dict[Annotated[int, Field(ge=0, le=3)], list[Hex48]] = Field(default_factory=dict)

    @field_validator("rtmr")
    @classmethod
    def _each_rtmr(cls, value: dict[int, list[str]]) -> dict[int, list[str]]:
        for index, allowed in value.items():
            if not allowed:
                raise ValueError(f"rtmr.{index}: an empty allow-list never means any value")
        return value


class ConfidentialVm(_Strict):
    """Per TEE type, the confidential VMs (platform measurements) a service may run in.

    In a confidential VM the hardware measures the VM (firmware, kernel, image), not the
    workload; the image's `seml run` measures the workload and binds that measurement into the
    report data with the ephemeral key and nonce. So a service lists the VMs here and, as
    always, the workloads in `measurements`. At least one TEE type must be given.
    """

    snp: SnpPlatform | None = None
    azure_snp: AzureSnpPlatform | None = None
    tdx: TdxPlatform | None = None

    @model_validator(mode="after")
    def _one_at_least(self) -> ConfidentialVm:
        if self.snp is None and self.azure_snp is None and self.tdx is None:
            raise ValueError("confidential_vm needs at least one of snp, azure_snp, tdx")
        return self


class NvidiaGpu(_Strict):
    """What `requires: [nvidia-gpu]` accepts: how many GPUs at least, and if given, which
    driver and VBIOS versions."""

    min_count: int = Field(default=1, ge=1, le=16)
    driver_versions: list[Version] | None = Field(default=None, min_length=1)
    vbios_versions: list[Version] | None = Field(default=None, min_length=1)


class Service(_Strict):
    name: Name
    measurements: list[Measurement] = Field(min_length=1)
    command: list[str] = Field(default_factory=list)
    environment: dict[Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)], str] = Field(
        default_factory=dict
    )
    # Paths in the service's workspace; checked together by `_layout` (seml._paths).
    files: dict[str, str] = Field(default_factory=dict)
    volumes: dict[Name, str] = Field(default_factory=dict)
    # The machines the service may run on; absent: any. Present, it must name at least one
    # (an empty allow-list never means "allow all").
    platforms: list[Platform] | None = Field(default=None, min_length=1)
    # Run in a confidential VM: the allowed VMs per TEE type; `measurements` are then the
    # workload measurements `seml run` computes inside the VM (see ConfidentialVm).
    confidential_vm: ConfidentialVm | None = None
    requires: list[Literal["nvidia-gpu"]] = Field(default_factory=list)
    nvidia_gpu: NvidiaGpu | None = None

    @field_validator("measurements")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("measurements are listed twice")
        return value

    @field_validator("environment")
    @classmethod
    def _no_code_loading(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(k for k in value if code_loading(k))
        if bad:
            raise ValueError(
                f"{', '.join(bad)} may not be set: such variables load code the measurement "
                "does not cover"
            )
        return value

    @model_validator(mode="after")
    def _layout(self) -> Service:
        check_layout(self.files, self.volumes)
        return self

    @model_validator(mode="after")
    def _gpu_rules(self) -> Service:
        if len(set(self.requires)) != len(self.requires):
            raise ValueError("requires lists an item twice")
        if self.nvidia_gpu is not None and "nvidia-gpu" not in self.requires:
            raise ValueError("nvidia_gpu applies only with requires: [nvidia-gpu]")
        return self

    def placeholders(self) -> list[tuple[str, Placeholder]]:
        """(where, placeholder) for every placeholder in the environment, files and command."""
        texts = [
            *((f"environment.{k}", v) for k, v in self.environment.items()),
            *((f"files[{k!r}]", v) for k, v in self.files.items()),
            *((f"command[{i}]", v) for i, v in enumerate(self.command)),
        ]
        out: list[tuple[str, Placeholder]] = []
        for where, text in texts:
            try:
                out += [(where, p) for p in placeholders_in(text)]
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
        return out


class Approval(_Strict):
    """Who must approve the first version (`create`) and each update (`update`): each an
    `ApprovalRule` (a list of parties, all of them; or {require, of, veto})."""

    create: ApprovalRule
    update: ApprovalRule


# The weaknesses a verdict can carry (seml.attest); "revoked" is never tolerable. A typo here
# must be an error, not a silently stricter (or, worse, misread) session.
Weakness = Literal[
    "simulation",
    "debug",
    "sw-hardening-needed",
    "configuration-needed",
    "out-of-date",
    "revocation-unchecked",
    "measurements-unchecked",
]


class Security(_Strict):
    tolerate: list[Weakness] = Field(default_factory=list)
    ignore_advisories: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$")]] = (
        Field(default_factory=list)
    )


class Storage(_Strict):
    location: Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class Session(_Strict):
    version: Literal[1]
    name: Name
    predecessor: SessionHash | None = None
    parties: dict[Name, Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        min_length=1
    )
    approval: Approval
    security: Security = Field(default_factory=Security)
    secrets: list[Secret] = Field(default_factory=list)
    volumes: list[Volume] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    storage: Storage | None = None

    @field_validator("parties")
    @classmethod
    def _keys_parse(cls, value: dict[str, str]) -> dict[str, str]:
        from seml.policy._keys import parse_public_key

        for party, text in value.items():
            try:
                parse_public_key(text)
            except ValueError as e:
                raise ValueError(f"party {party}: {e}") from None
        return value

    @model_validator(mode="after")
    def _cross_references(self) -> Session:
        _check_cross_references(self)
        return self

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def secret(self, name: str) -> Secret | None:
        return next((s for s in self.secrets if s.name == name), None)

    def volume(self, name: str) -> Volume | None:
        return next((v for v in self.volumes if v.name == name), None)

    def document(self) -> dict[str, Any]:
        """The canonical plain-data form (aliases, no unset defaults dropped): what is hashed."""
        return self.model_dump(mode="json", by_alias=True)


def _unique(kind: str, names: list[str]) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"{kind} {n} is defined twice")
        seen.add(n)


def _check_cross_references(s: Session) -> None:
    _unique("secret", [x.name for x in s.secrets])
    _unique("volume", [x.name for x in s.volumes])
    _unique("service", [x.name for x in s.services])
    parties = set(s.parties)
    for rule, approval in (("create", s.approval.create), ("update", s.approval.update)):
        for n in sorted(approval.parties() - parties):
            raise ValueError(f"approval.{rule}: {n} is not one of the parties")
    services = {x.name: x for x in s.services}
    secrets: dict[str, Secret] = {x.name: x for x in s.secrets}
    volumes = {x.name for x in s.volumes}
    for i, secret in enumerate(s.secrets):
        for reader in secret.readers:
            if reader not in services:
                raise ValueError(f"secrets[{i}].readers: no service named {reader}")
        if secret.provided_by is not None and secret.provided_by not in parties:
            raise ValueError(f"secrets[{i}].provided_by: {secret.provided_by} is not a party")
        if secret.release is not None:
            for n in sorted(secret.release.approve.parties() - parties):
                raise ValueError(f"secrets[{i}].release.approve: {n} is not one of the parties")
            for n in secret.release.producers:
                if n not in secret.readers:
                    raise ValueError(
                        f"secrets[{i}].release.producers: {n} is not a reader of {secret.name}"
                    )
        for e in secret.export:
            if e.session == s.name:
                raise ValueError(f"secrets[{i}].export: a session cannot export to itself")
    released = [x.name for x in s.secrets if x.release is not None]
    if len(released) > 1:
        raise ValueError(
            f"secrets: release is set on {', '.join(released)}; a session releases one model key"
        )
    for i, volume in enumerate(s.volumes):
        for e in volume.export:
            if e.session == s.name:
                raise ValueError(f"volumes[{i}].export: a session cannot export to itself")
    for i, service in enumerate(s.services):
        try:
            found = service.placeholders()
        except ValueError as e:
            raise ValueError(f"services[{i}].{e}") from None
        for vol in service.volumes:
            if vol not in volumes:
                raise ValueError(f"services[{i}].volumes: no volume named {vol}")
        for where, p in found:
            if where.startswith("command["):
                raise ValueError(
                    f"services[{i}].{where}: no secrets in the command line (argv is visible to "
                    "every process on the machine); use environment or files"
                )
            used = secrets.get(p.name)
            if used is None:
                raise ValueError(f"services[{i}].{where}: no secret named {p.name}")
            secret = used
            if service.name not in secret.readers:
                raise ValueError(
                    f"services[{i}].{where}: service {service.name} is not a reader of "
                    f"secret {p.name}"
                )
            if (
                p.part is not None
                and secret.kind not in (SecretKind.ED25519, SecretKind.X509)
                and secret.import_ is None
            ):
                raise ValueError(
                    f"services[{i}].{where}: .{p.part} applies only to ed25519/x509 secrets"
                )
            if p.part == "crt" and secret.kind is SecretKind.ED25519:
                raise ValueError(f"services[{i}].{where}: an ed25519 secret has no .crt")

"""`seml doctor`: check this machine against its profile, one verdict per check with its fix.

Each check takes what it checks explicitly (paths, a URL and pin, a store, device roots) and
returns a `Check`; none raises for what it finds. `fail` is something that stops this machine's
part of the flow; `warn` is something to know that does not (no FUSE: only `--mount fuse`
needs it; no TEE: evidence will be simulated, which sessions must tolerate).
"""

from __future__ import annotations

import io
import os
import secrets
import stat
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from seml.errors import SemlError

if TYPE_CHECKING:
    from seml.store import ObjectStore

__all__ = [
    "TEE_DEVICES",
    "Check",
    "check_cas",
    "check_folder",
    "check_fuse",
    "check_key_file",
    "check_seml",
    "check_storage",
    "check_tee",
]

Status = Literal["ok", "warn", "fail"]
# Device nodes a TEE guest or enclave host exposes; present without a usable attestation
# interface, seml would fall back to simulation on a machine that has the hardware.
TEE_DEVICES = (
    Path("/dev/sgx_enclave"),
    Path("/dev/tdx_guest"),
    Path("/dev/sev-guest"),
)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[self.status]
        fix = f"; fix: {self.fix}" if self.fix else ""
        return f"{mark}  {self.name}: {self.detail}{fix}"


def check_seml(
    *,
    version: str,
    measurement: str,
    executable: Sequence[str],
    this: Sequence[str],
    environ: Mapping[str, str],
) -> Check:
    """This seml's version and the measurement a service gets here; and whether the seml the
    services run (`executable`) is this one, or measures the same."""
    detail = f"seml {version}; a service's measurement here: {measurement} (simulated)"
    if list(executable) == list(this):
        return Check("seml", "ok", f"{detail}; services run {' '.join(executable)}")
    program = executable[0]
    if not (Path(program).is_file() and os.access(program, os.X_OK)):
        return Check(
            "seml",
            "fail",
            f"the services' seml {program} is not an executable file",
            "point the profile at an installed seml: seml init ... --seml PATH",
        )
    env = {k: v for k, v in environ.items() if not k.startswith("SEML_")}
    try:
        out = subprocess.run(
            [*executable, "measure"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return Check("seml", "fail", f"cannot run {program}: {e}", "check the profile's seml")
    theirs = out.stdout.strip()
    if out.returncode != 0 or theirs != measurement:
        got = theirs or (out.stderr.strip().splitlines() or ["no output"])[-1]
        return Check(
            "seml",
            "fail",
            f"the services' seml {program} measures {got}, not this seml's {measurement}",
            "install the same seml release there, or point the profile at this one "
            "(seml init ... --seml PATH)",
        )
    return Check("seml", "ok", f"{detail}; services run {program}, which measures the same")


def check_cas(url: str | None, pin: str | None, *, timeout: float = 10.0) -> Check:
    """The attestation service answers at `url` with the pinned certificate."""
    from seml.cas import CasClient, PinMismatchError

    if not url or not pin:
        return Check(
            "attestation service",
            "fail",
            "no URL and pin in the profile (or SEML_CAS, SEML_CAS_FINGERPRINT)",
            "get both from the operator: seml init --role party --name NAME --cas URL "
            "--cas-fingerprint PIN",
        )
    try:
        with CasClient(url, pin, timeout=timeout) as client:
            client.info()
    except PinMismatchError as e:
        return Check(
            "attestation service",
            "fail",
            str(e),
            "ask the operator for the current pin (`seml cas info STATE_DIR` on its host), "
            "then seml init ... --cas-fingerprint PIN",
        )
    except SemlError as e:
        return Check(
            "attestation service",
            "fail",
            str(e),
            "check that `seml cas serve` runs there, the URL, and the network between",
        )
    return Check("attestation service", "ok", f"{url} answers; its certificate matches {pin}")


def check_key_file(
    label: str, path: Path | None, load: Callable[[Path], object], *, create: str
) -> Check:
    """A private key: present, a regular file owned by this user, mode 0600 or stricter, and
    loadable by `load`."""
    if path is None:
        return Check(label, "fail", "not set in the profile", create)
    try:
        st = path.stat()
    except FileNotFoundError:
        return Check(label, "fail", f"{path} does not exist", create)
    except OSError as e:
        return Check(label, "fail", f"cannot read {path}: {e.strerror}", f"check {path.parent}")
    if not stat.S_ISREG(st.st_mode):
        return Check(label, "fail", f"{path} is not a regular file", create)
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return Check(
            label,
            "fail",
            f"{path} is owned by uid {st.st_uid}, not by this user ({os.geteuid()})",
            f"chown $(id -u) {path}",
        )
    if st.st_mode & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        return Check(
            label, "fail", f"{path} has mode {mode:04o}: others may read it", f"chmod 600 {path}"
        )
    try:
        load(path)
    except SemlError as e:
        return Check(label, "fail", str(e), create)
    return Check(label, "ok", f"{path} (0600, yours)")


def check_folder(label: str, path: Path | None, *, write: bool = True) -> Check:
    if path is None:
        return Check(label, "fail", "not set in the profile", "seml init creates it")
    if not path.is_dir():
        return Check(label, "fail", f"{path} is not a folder", f"mkdir -p {path} (or seml init)")
    needed = os.R_OK | os.X_OK | (os.W_OK if write else 0)
    if not os.access(path, needed):
        what = "writable" if write else "readable"
        return Check(label, "fail", f"{path} is not {what} by this user", f"check {path}'s owner")
    return Check(label, "ok", str(path))


def check_storage(
    location: str | None,
    store: Callable[[], ObjectStore],
    *,
    missing: Sequence[str] = (),
    describe: str = "",
) -> Check:
    """A real put, get and delete of a probe object at `location` through `store()`."""
    from seml.store import ObjectNotFound

    if not location:
        return Check(
            "storage",
            "warn",
            "no storage location in the profile: not probed",
            "seml init ... --storage s3://BUCKET/PREFIX",
        )
    if missing:
        if " " in missing[0]:  # a credentials file's profile without static keys
            return Check(
                "storage",
                "fail",
                f"no {missing[0]}: the profile takes the storage credentials from there",
                "put aws_access_key_id and aws_secret_access_key in that profile (seml passes "
                "static keys only, never a credential_process)",
            )
        names = ", ".join(f"${n}" for n in missing)
        return Check(
            "storage",
            "fail",
            f"{names} not set: the profile takes the storage credentials from there",
            f"export {missing[0]}=... (or another source: seml init --aws-profile ...)",
        )
    name = f".seml-doctor/probe-{secrets.token_hex(8)}"
    payload = secrets.token_bytes(4096)
    where = f"{location}{describe}"
    try:
        target = store()
        target.put(name, io.BytesIO(payload))
        try:
            with target.open(name) as f:
                back = f.read()
        finally:
            target.delete(name)
        try:
            target.stat(name)
            gone = False
        except ObjectNotFound:
            gone = True
    except SemlError as e:  # the store's errors name the store (and its endpoint)
        return Check(
            "storage",
            "fail",
            str(e),
            "check the endpoint, the credentials and their rights on the bucket",
        )
    if back != payload:
        return Check("storage", "fail", f"{where}: the probe read back differs", "check the store")
    if not gone:
        return Check(
            "storage", "fail", f"{where}: the probe was not deleted", "check delete rights"
        )
    return Check("storage", "ok", f"{where}: wrote, read back and deleted a probe object")


def check_fuse(problem: str | None) -> Check:
    """`problem` is `seml.volume.fuse_available()`'s answer (None: FUSE works here)."""
    if problem is None:
        return Check("FUSE", "ok", "available (seml run --mount fuse can decrypt on access)")
    return Check(
        "FUSE",
        "warn",
        f"not available: {problem}; only --mount fuse needs it",
        "apt-get install fuse3 (and /dev/fuse in a container)",
    )


def check_tee(
    *, gramine_root: Path, tsm_root: Path, devices: Sequence[Path] = TEE_DEVICES
) -> Check:
    """Which evidence this machine produces: hardware (Gramine, configfs-tsm) or simulation;
    a TEE device without a usable attestation interface is a failure (seml would simulate on
    hardware that could attest)."""
    from seml.attest import ConfigfsTsmProvider, GramineProvider

    if GramineProvider.available(gramine_root):
        return Check("TEE", "ok", f"Gramine DCAP attestation at {gramine_root}: hardware evidence")
    if ConfigfsTsmProvider.available(tsm_root):
        return Check("TEE", "ok", f"configfs-tsm at {tsm_root}: hardware evidence (TDX or SEV-SNP)")
    present = [str(d) for d in devices if d.exists()]
    if tsm_root.is_dir():
        return Check(
            "TEE",
            "fail",
            f"configfs-tsm at {tsm_root} is not writable by this user",
            "run the services as root (or give this user write access to it)",
        )
    if present:
        return Check(
            "TEE",
            "fail",
            f"{', '.join(present)} present, but no attestation interface seml can use "
            f"(neither Gramine at {gramine_root} nor configfs-tsm at {tsm_root})",
            "mount configfs (mount -t configfs none /sys/kernel/config) on a TDX or SEV-SNP "
            "guest, or run seml inside Gramine on SGX",
        )
    return Check(
        "TEE",
        "warn",
        "none: evidence will be SIMULATED (proves nothing; only sessions that tolerate "
        "simulation accept it)",
    )

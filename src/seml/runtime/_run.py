"""`seml run`: measure, attest, receive the configuration, unseal, run, seal, report.

The steps follow the SCONE runtime. Nothing the command has not been given by the attestation
service starts: any failure before the command (measurement refused, volume tampered with or
rolled back) ends the run with the reason and the command is never executed. Secrets exist only
in the child's environment and in files inside the private workspace, which is wiped on exit.

The command's environment is the session's plus a short allow-list from the host, never a
variable that loads code (`seml._environ`); `seml run` itself refuses to start with one set.
The command dies with the runtime: it gets SIGKILL when `seml run` dies, however it dies
(the kernel's parent-death signal), and a workspace left behind by a killed runtime is wiped by
the next seml command on the machine.

A run is a transaction for the volumes: they are sealed as a new version only when the command
exits with status 0; a failing, killed or interrupted command leaves them at their last sealed
version, which the attestation service also knows, so an old copy cannot be brought back.
A volume whose files the command left exactly as unsealed (same files, each with the size,
mtime, ctime, inode and mode it had right after unseal) is not sealed again: it stays at its
version, reported as opened and sealed at it (see docs/threat-model.md for what that trusts).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from seml._claims import REPORT_VARIABLE
from seml._environ import refuse_code_loading
from seml._fs import Folder
from seml._paths import check_layout
from seml._proc import die_with_parent
from seml.attest import (
    CompositeProvider,
    EvidenceProvider,
    SimulatedGpuProvider,
    SimulationProvider,
    select_gpu_provider,
    select_provider,
)
from seml.cas import CasClient, ServiceConfig, VolumeGrant
from seml.errors import IntegrityError, PolicyError, StorageError, UsageError
from seml.runtime._layout import (
    check_pass_env,
    child_environment,
    link_folders,
    namespace_available,
    plan_mounts,
    resolve_seml,
    workspace_path,
    wrap_command,
)
from seml.runtime._measure import measure
from seml.runtime._platform import load_platform_key
from seml.volume import Volume, private_workspace

if TYPE_CHECKING:
    from seml.volume import FuseMount

__all__ = ["RunOptions", "RunResult", "run_service"]

_CLAIMS = ".seml-claims.json"
_MAX_CLAIMS = 1 << 20

SIMULATION_BANNER = (
    "SIMULATED attestation: no TEE hardware is used; the evidence is made in software "
    "and proves nothing about where this code runs"
)


@dataclass(frozen=True)
class RunOptions:
    session: str
    service: str
    code: Sequence[Path] = ()
    command: Sequence[str] = ()  # empty: the session's command
    volumes_dir: Path = Path("volumes")
    session_hash: str | None = None
    simulation: bool = True
    mount: str = "auto"  # auto | namespace | workspace | fuse
    # Simulation: the machine's identity (see _platform). Given, the file must exist; None
    # makes a one-off platform for this run (refused by services pinned to platforms).
    platform_key: Path | None = None
    gpu: str = "auto"  # auto | required | simulate | none: GPU evidence (see select_gpu_provider)
    # What this machine chooses to give the service, never what the session's public text says:
    # variables (storage endpoint and credentials; no code-loading ones), folders linked into
    # the workspace by name, and the argv of its `seml` (for commands whose program is `seml`).
    pass_env: Mapping[str, str] = field(default_factory=dict)
    folders: Mapping[str, Path] = field(default_factory=dict)
    seml: Sequence[str] = ()


@dataclass
class RunResult:
    status: int
    measurement: str
    volume_versions: dict[str, int] = field(default_factory=dict)
    sealed: bool = False


def _say(err: TextIO, message: str) -> None:
    print(f"seml run: {message}", file=err, flush=True)


def _volume_dir(root: Path, grant: VolumeGrant) -> Path:
    return root / grant.owner / grant.volume


@dataclass
class _Mounted:
    name: str
    grant: VolumeGrant
    volume: Volume
    known: int
    target: Path
    fuse: FuseMount | None = None

    def seal(self) -> int:
        if self.fuse is not None:
            return self.fuse.unmount(seal=True)
        return self.volume.seal(self.target)

    def unchanged(self) -> bool:
        """Whether the command left the unsealed files exactly as they were (never for a
        volume the service has no version of yet, nor through FUSE, which seals on unmount,
        nor for a local copy newer than the service's version: a run that sealed it died
        before reporting it, and sealing again moves the service to what is on disk)."""
        return (
            self.fuse is None
            and self.known > 0
            and self.volume.version == self.known
            and self.volume.unchanged_since_unseal(self.target)
        )

    def discard(self) -> None:
        if self.fuse is not None and self.fuse.version is None:
            self.fuse.unmount(seal=False)


def _open_volumes(cas: CasClient, config: ServiceConfig, root: Path, err: TextIO) -> list[_Mounted]:
    """Open (create on first use) and authenticate every volume of the service; no plaintext
    yet. A missing, replaced or rolled-back volume stops the run here."""
    mounted: list[_Mounted] = []
    for name, grant in sorted(config.volumes.items()):
        known, tag = cas.volume_version(grant.owner, grant.volume, grant.token)
        path = _volume_dir(root, grant)
        key = bytes.fromhex(grant.key)
        if Volume.exists(path):
            volume = Volume.open(path, key, name=grant.volume, expected_version=known)
        elif known == 0:
            volume = Volume.create(path, key, name=grant.volume)
            _say(err, f"created protected volume {grant.volume} at {path}")
        else:
            raise IntegrityError(
                f"volume {grant.volume} is missing at {path}, but the attestation service "
                f"knows version {known} of it"
            )
        if tag is not None and tag != volume.volume_id:
            raise IntegrityError(
                f"volume {grant.volume} at {path} is not the volume the attestation service "
                f"knows (id {volume.volume_id}, expected {tag})"
            )
        mounted.append(_Mounted(name, grant, volume, known, Path()))
    return mounted


def _mount_volumes(
    mounted: list[_Mounted],
    workspace: Path,
    err: TextIO,
    stack: contextlib.ExitStack,
    *,
    root: Path,
    fuse: bool,
) -> None:
    """Make each volume's files appear at its path in the workspace."""
    for m in mounted:
        m.target = workspace_path(workspace, m.grant.path)
        with Folder.open(workspace, private=True) as ws:  # no link is followed below it
            ws.make_folders(m.target.relative_to(workspace).as_posix())
        where = f"volume {m.grant.volume} v{m.volume.version}"
        if fuse:
            from seml.volume import FuseMount

            m.fuse = FuseMount(
                _volume_dir(root, m.grant),
                bytes.fromhex(m.grant.key),
                name=m.grant.volume,
                mountpoint=m.target,
                expected_version=m.known,
            )
            stack.enter_context(m.fuse)
            stack.callback(m.discard)
            _say(err, f"{where} mounted (FUSE) at {m.grant.path}")
        else:
            m.volume.unseal(m.target)
            _say(err, f"{where} unsealed at {m.grant.path}")


def _inject_files(config: ServiceConfig, workspace: Path) -> None:
    with Folder.open(workspace, private=True) as ws:  # 0600, never through a link
        for path, content in config.files.items():
            rel = workspace_path(workspace, path).relative_to(workspace).as_posix()
            ws.write(rel, content, mode=0o600)


def _unlink(links: list[Path]) -> None:
    """Remove the folder links first, so wiping the workspace can never reach their targets."""
    for link in links:
        with contextlib.suppress(OSError):
            link.unlink()


def _run_child(argv: list[str], env: dict[str, str], cwd: Path) -> int:
    """Run the child in its own process group, dying with this process; forward SIGINT,
    SIGTERM and SIGHUP; return its status."""
    try:
        child = subprocess.Popen(die_with_parent(argv), env=env, cwd=cwd, start_new_session=True)
    except OSError as e:
        raise UsageError(f"cannot start {argv[0]!r}: {e.strerror or e}") from e

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    previous = {
        s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        status = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return status if status >= 0 else 128 - status


def run_service(
    options: RunOptions,
    cas: CasClient,
    *,
    provider_factory: Callable[[str], EvidenceProvider] | None = None,
    err: TextIO = sys.stderr,
    environ: Mapping[str, str] | None = None,
) -> RunResult:
    """Run one service of a session as `seml run` does; see the module docstring.

    `environ` is this process's environment (default `os.environ`): checked for code-loading
    variables, and the source of the host's allow-listed variables for the command."""
    host = os.environ if environ is None else environ
    refuse_code_loading(host, "seml run")
    check_pass_env(options.pass_env, {})  # before anything; against the session's once known
    measurement = measure(list(options.code), list(options.command))
    if provider_factory is not None:
        provider = provider_factory(measurement)
    else:
        key = None
        if options.platform_key is not None:
            key = load_platform_key(options.platform_key)
        provider = select_provider(
            simulation_measurement=measurement,
            allow_simulation=options.simulation,
            platform_key=key,
        )
    simulated = isinstance(provider, SimulationProvider)
    if simulated:
        _say(err, SIMULATION_BANNER)
        if isinstance(provider, SimulationProvider):
            _say(err, f"simulated platform {provider.platform}")
            if options.platform_key is None and provider_factory is None:
                _say(
                    err,
                    "no platform key: this run uses a one-off platform, which services pinned "
                    "to platforms refuse (make one with `seml platform init`)",
                )
    gpus = select_gpu_provider(mode=options.gpu) if options.gpu != "none" else None
    if isinstance(gpus, SimulatedGpuProvider):
        simulated = True
        _say(err, "SIMULATED GPU evidence: made in software, proves nothing about a GPU")
    if gpus is not None:
        # The GPUs answer a nonce derived from the CPU's report data: one attestation.
        _say(err, f"GPU evidence: {type(gpus).__name__}")
        provider = CompositeProvider(provider, gpus)
    _say(err, f"measurement {measurement}")
    # The workload measurement is bound into the report data: in a confidential VM it is what
    # the hardware-signed report vouches for (the VM's image runs this seml).
    config = cas.attest(
        options.session,
        options.service,
        provider,
        session_hash=options.session_hash,
        workload=measurement,
    )
    if config.simulated and not simulated:
        raise IntegrityError("the attestation service says the evidence was simulated")
    _say(
        err,
        f"attested as {config.service} of session {config.session} ({config.session_hash}); "
        f"received {len(config.secrets)} secret(s), {len(config.files)} file(s), "
        f"{len(config.volumes)} volume(s)",
    )
    command = list(options.command) or list(config.command)
    if options.command and config.command and list(options.command) != list(config.command):
        raise PolicyError(
            f"service {config.service} runs {config.command!r} in its session, not the command "
            "given here"
        )
    if not command:
        raise UsageError(f"service {config.service} has no command: give one after --")
    try:  # the attestation service checked them; a runtime never trusts a path blindly
        check_layout(config.files, {n: g.path for n, g in config.volumes.items()})
    except ValueError as e:
        raise PolicyError(f"service {config.service} of session {config.session}: {e}") from None
    command = resolve_seml(command, options.seml)
    check_pass_env(options.pass_env, config.environment)
    mode = options.mount
    if mode == "auto":
        mode = "namespace" if namespace_available() else "workspace"
    if mode == "namespace" and not namespace_available():
        raise UsageError("--mount namespace needs root and util-linux unshare")

    result = RunResult(status=1, measurement=measurement)
    steps: list[dict[str, object]] = []
    mounted = _open_volumes(cas, config, options.volumes_dir, err)
    plaintext = 0 if mode == "fuse" else sum(f.size for m in mounted for f in m.volume.files())
    with private_workspace(size_hint=plaintext) as ws, contextlib.ExitStack() as stack:
        try:
            _mount_volumes(mounted, ws, err, stack, root=options.volumes_dir, fuse=mode == "fuse")
        except OSError as e:
            raise StorageError(f"cannot prepare the volumes in the workspace: {e}") from e
        _inject_files(config, ws)
        links = link_folders(ws, options.folders)
        stack.callback(_unlink, links)
        if links:
            shown = ", ".join(f"{p.name} -> {options.folders[p.name]}" for p in links)
            _say(err, f"this machine's folders: {shown}")
        plan = plan_mounts(
            ws,
            [*config.files, *(g.path for g in config.volumes.values())],
            create=options.mount == "namespace",
        )
        if mode == "namespace":
            argv = wrap_command(command, plan)
        else:
            argv = command
            if plan.binds:
                _say(err, "no private mount namespace: session paths are relative to the workspace")
        if options.pass_env:
            _say(err, f"passing {', '.join(sorted(options.pass_env))} from this machine")
        env = child_environment(
            host,
            passed=options.pass_env,
            service=config.environment,
            workspace=ws,
            extra={
                "SEML_WORKSPACE": str(ws),
                "SEML_SESSION": config.session,
                "SEML_SERVICE": config.service,
                "SEML_SIMULATED": "1" if config.simulated else "0",
                REPORT_VARIABLE: str(ws / _CLAIMS),
                **{
                    f"SEML_VOLUME_{m.name.upper().replace('-', '_')}": str(m.target)
                    for m in mounted
                },
            },
        )
        result.status = _run_child(argv, env, ws)
        if result.status != 0:
            for m in mounted:
                m.discard()
                result.volume_versions[m.name] = m.volume.version
            if mounted:
                _say(
                    err,
                    f"command exited with status {result.status}: volumes not sealed, they stay "
                    "at their last sealed version",
                )
            return result
        for m in mounted:
            if m.unchanged():
                # Same files as the sealed version: a new one would hold the same content, so
                # there is nothing to seal, fsync or report; the service's version stays.
                result.volume_versions[m.name] = m.known
                steps.append(
                    {
                        "owner": m.grant.owner,
                        "volume": m.grant.volume,
                        "opened": m.known,
                        "sealed": m.known,
                    }
                )
                _say(err, f"volume {m.grant.volume} unchanged: stays at v{m.known}")
                continue
            version = m.seal()
            try:
                cas.set_volume_version(
                    m.grant.owner,
                    m.grant.volume,
                    m.grant.token,
                    expected=m.known,
                    version=version,
                    tag=m.volume.volume_id,
                )
            except PolicyError as e:
                raise StorageError(
                    f"volume {m.grant.volume} was sealed as version {version} but the "
                    f"attestation service did not record it: {e}"
                ) from e
            result.volume_versions[m.name] = version
            steps.append(
                {
                    "owner": m.grant.owner,
                    "volume": m.grant.volume,
                    "opened": m.known,
                    "sealed": version,
                }
            )
            _say(err, f"volume {m.grant.volume} sealed as v{version}")
        result.sealed = True
        if config.completion is not None:
            _report(cas, config, steps, _read_claims(ws / _CLAIMS), err)
    return result


def _read_claims(path: Path) -> dict[str, object]:
    """What the command claims it did (`seml._claims`); nothing if it wrote nothing."""
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_CLAIMS + 1)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise StorageError(f"cannot read the command's claims {path}: {e.strerror}") from e
    if len(data) > _MAX_CLAIMS:
        raise UsageError(f"the command's claims are larger than {_MAX_CLAIMS} bytes")
    try:
        claims = json.loads(data)
    except ValueError:
        raise UsageError("the command's claims file is not JSON") from None
    if not isinstance(claims, dict):
        raise UsageError("the command's claims file is not a JSON object")
    return claims


def _report(
    cas: CasClient,
    config: ServiceConfig,
    steps: list[dict[str, object]],
    claims: dict[str, object],
    err: TextIO,
) -> None:
    """Post the completion report with the attestation's capability: the service learns what
    the attested code did (and issues a receipt when this completes a training run)."""
    answer = cas.complete(config, volumes=steps, claims=claims)
    said = f"completion reported (audit entry {answer.get('seq')})"
    if claims:
        said += f" with claims: {', '.join(sorted(claims))}"
    _say(err, said)
    if answer.get("receipt"):
        _say(err, f"the attestation service issued receipt {answer['receipt']}")
    elif answer.get("note"):
        _say(err, str(answer["note"]))

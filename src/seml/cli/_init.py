"""`seml init` (this machine's profile, its folders and keys) and `seml profile list/show/use`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from seml.errors import UsageError

if TYPE_CHECKING:
    from seml.profiles import Credentials, Profile
    from seml.profiles._setup import InitResult

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    profile = typer.Typer(
        help="This machine's profiles (written by `seml init`): list, show, choose the current.",
        no_args_is_help=True,
    )
    profile.command("list")(list_profiles)
    profile.command("show")(show)
    profile.command("use")(use)
    app.add_typer(profile, name="profile")


def _pairs(values: list[str], what: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"{what} wants NAME=PATH, got {v!r}")
        out[name] = Path(path)
    return out


def _credentials(
    access_env: str | None, secret_env: str | None, aws_profile: str | None, file: Path | None
) -> Credentials | None:
    from seml.policy import schema_errors
    from seml.profiles import Credentials

    data: dict[str, object] = {}
    if access_env or secret_env:
        data["env"] = {
            "access_key_id": access_env or "AWS_ACCESS_KEY_ID",
            "secret_access_key": secret_env or "AWS_SECRET_ACCESS_KEY",
        }
    if aws_profile:
        data["aws_profile"] = aws_profile
    if file is not None:
        data["file"] = str(file.absolute())
    if not data:
        return None
    with schema_errors("seml init credentials"):
        return Credentials.model_validate(data)


def _default_seml() -> Path | None:
    exe = Path(sys.executable).with_name("seml")
    return exe if exe.is_file() else None


def init(
    role: Annotated[str, typer.Option("--role", help="party or operator.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Party role: your party's name in sessions.")
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile", help="The profile to write (default: the party's name, or operator)."
        ),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            help="Where this profile's keys and folders go (default: "
            "~/.local/share/seml/PROFILE). Each organization chooses its own.",
        ),
    ] = None,
    cas_url: Annotated[
        str | None,
        typer.Option(
            "--cas",
            help="The attestation service URL the operator gave you (an operator's cloud machine: "
            "the service runs elsewhere, none is set up here).",
        ),
    ] = None,
    cas_fingerprint: Annotated[
        str | None,
        typer.Option("--cas-fingerprint", help="The service's pin (sha256:...)."),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage", help="Object storage (s3://bucket/prefix): where `seml doctor` probes."
        ),
    ] = None,
    s3_endpoint: Annotated[
        str | None, typer.Option("--s3-endpoint", help="S3 endpoint URL as this machine sees it.")
    ] = None,
    access_key_env: Annotated[
        str | None,
        typer.Option(
            "--access-key-env",
            help="Storage credentials: the NAME of the variable holding the access key id "
            "(default AWS_ACCESS_KEY_ID). Its value never goes into the profile.",
        ),
    ] = None,
    secret_key_env: Annotated[
        str | None,
        typer.Option(
            "--secret-key-env",
            help="Storage credentials: the NAME of the variable holding the secret key "
            "(default AWS_SECRET_ACCESS_KEY).",
        ),
    ] = None,
    aws_profile: Annotated[
        str | None,
        typer.Option("--aws-profile", help="Storage credentials: an AWS profile's name."),
    ] = None,
    credentials_file: Annotated[
        Path | None,
        typer.Option("--credentials-file", help="Storage credentials: an AWS credentials file."),
    ] = None,
    folder: Annotated[
        list[str] | None,
        typer.Option(
            "--folder",
            help="NAME=PATH: a folder this machine gives its services as NAME/ (repeatable; a "
            "party gets data, input and output under --root by default).",
        ),
    ] = None,
    seml: Annotated[
        Path | None,
        typer.Option("--seml", help="The seml executable services run (default: this one)."),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option("--listen", help="Operator: HOST:PORT the service listens on (0.0.0.0:8443)."),
    ] = None,
    advertise: Annotated[
        str | None,
        typer.Option(
            "--advertise", help="Operator: the URL the parties use, if not the listen one."
        ),
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="Operator: a name or address for the TLS certificate."),
    ] = None,
) -> None:
    """Set this machine up: write its profile, create its folders and keys, say what to exchange.

    Prints what to send to the other organizations (a party's public key and platform id; the
    operator's service URL and pin) and what you need from them. Safe to run again: nothing
    that exists is overwritten; given values are updated.
    """
    import datetime as dt
    import re

    from seml.cas._serve import interface_addresses
    from seml.profiles import PROFILE_NAME, config_path, load_config, save_config
    from seml.profiles._setup import InitRequest, init_profile

    if role not in ("party", "operator"):
        raise UsageError(f"--role is party or operator, not {role!r}")
    from seml.cli import _machine

    # init's own --profile, else `seml --profile NAME init`, else $SEML_PROFILE: the profile to
    # write (it need not exist yet); else the party's name, or "operator".
    asked = profile or _machine.chosen() or os.environ.get("SEML_PROFILE")
    chosen = asked or name or ("operator" if role == "operator" else None)
    if chosen is None:
        raise UsageError("a party's profile needs --name PARTY (its name in sessions)")
    if not re.fullmatch(PROFILE_NAME, chosen):
        raise UsageError(f"profile name {chosen!r}: letters, digits, _ . - (at most 64)")
    # The file itself, not the selected profile: init works with none, and writes the one named.
    path = config_path(os.environ)
    config = load_config(path)
    request = InitRequest(
        role=role,
        profile=chosen,
        party=name,
        root=root,
        cas_url=cas_url,
        cas_fingerprint=cas_fingerprint,
        storage=storage,
        s3_endpoint=s3_endpoint,
        credentials=_credentials(access_key_env, secret_key_env, aws_profile, credentials_file),
        folders=_pairs(folder or [], "--folder"),
        seml=seml,
        listen=listen,
        advertise=advertise,
        hosts=tuple(host or ()),
    )
    new, result = init_profile(
        config,
        request,
        default_root=_data_home() / "seml" / chosen,
        default_seml=_default_seml(),
        now=dt.datetime.now(dt.UTC),
        interfaces=interface_addresses() if role == "operator" else (),
    )
    save_config(path, new)
    _report(result, path)


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def _describe_storage(p: Profile) -> str:
    s = p.storage
    if s.location is None and s.endpoint is None:
        return "(none set: --storage, --s3-endpoint)"
    where = s.location or "(no location)"
    at = f" at {s.endpoint}" if s.endpoint else ""
    c = s.credentials
    if c is None:
        creds = "no credentials (file storage, or AWS's standard variables if set)"
    elif c.env is not None:
        names = [c.env.access_key_id, c.env.secret_access_key]
        creds = "credentials from $" + ", $".join(names)
    else:
        parts = [
            f"AWS profile {c.aws_profile}" if c.aws_profile else "",
            f"file {c.file}" if c.file else "",
        ]
        creds = "credentials from " + " in ".join(x for x in parts if x)
    return f"{where}{at}; {creds}"


def _report(r: InitResult, path: Path) -> None:
    from seml.profiles._setup import PARTY_FOLDERS

    p = r.profile
    echo = typer.echo
    who = f"party {p.party}" if p.role == "party" else "operator"
    verb = "updated" if r.updated else "written"
    echo(f"profile {r.name} ({who}) {verb} in {path}; it is the current profile")
    made = {path: what for what, path in r.made}

    def line(label: str, value: object, note: str = "") -> None:
        created = " (created)" if isinstance(value, Path) and value in made else ""
        echo(f"  {label:<20} {value}{created}{note}")

    if p.role == "operator" and p.service is not None:
        line("service state", p.service.state)
        line("listens on", p.service.listen)
    if p.signing_key is not None:
        line("signing key", p.signing_key, f"; 0600, signs sessions as {p.party}")
    if p.platform_key is not None:
        line("platform key", p.platform_key, "; 0600, simulated: stands in for this CPU")
    line("protected volumes", p.volumes)
    line("sync state", p.state)
    for name, folder in p.folders.items():
        note = f": {PARTY_FOLDERS[name]}" if name in PARTY_FOLDERS else ""
        line(f"folder {name}/", folder, note)
    line("storage", _describe_storage(p))
    line("seml", p.seml or "(this installation's, found when services start)")
    if p.cas.url and p.cas.fingerprint:
        line("attestation service", f"{p.cas.url} pinned {p.cas.fingerprint}")
    else:
        line("attestation service", "(not set yet)")
    echo("")
    if p.role == "party":
        echo("Send to the other organizations (public; it identifies you and this machine):")
        echo(f"  party:        {p.party}")
        echo(f"  public key:   {r.public_key}")
        echo(f"  platform id:  {r.platform_id}  (simulated)")
        echo("You need from them:")
        if not (p.cas.url and p.cas.fingerprint):
            echo(
                "  the operator: the attestation service's URL and pin, then run "
                f"`seml init --role party --name {p.party} --cas URL --cas-fingerprint PIN`"
            )
        echo("  the operator: the cloud machine's platform id")
        echo("  each other party: its name, public key and platform id")
        echo("  (the sessions list every public key under parties, each platform id under the")
        echo("  services that may run on that machine)")
    elif p.service is None:
        echo("This is a cloud machine of the operator; the attestation service runs elsewhere.")
        echo("Send to every party (public):")
        echo(f"  cloud platform id: {r.platform_id}  (simulated)")
        echo("You need from each party: nothing (the parties' sessions name this platform id).")
    else:
        url = r.service_urls[0] if r.service_urls else p.cas.url
        echo(
            "Start the attestation service here: seml cas serve (its folder and address are "
            "in the profile)"
        )
        echo("Send to every party (public):")
        echo(f"  service URL:  {url}")
        if len(r.service_urls) > 1:
            echo(f"                (or {', '.join(r.service_urls[1:])}; --advertise URL to choose)")
        echo(f"  pin:          {p.cas.fingerprint}")
        echo(f"  cloud platform id: {r.platform_id}  (simulated)")
        echo(
            f"  each party runs: seml init --role party --name NAME --cas {url} "
            f"--cas-fingerprint {p.cas.fingerprint}"
        )
        echo("You need from each party: its name, public key and platform id.")
    echo("Then check this machine: seml doctor")


def list_profiles() -> None:
    """List the profiles (* marks the current one)."""
    from seml.profiles import config_path, load_config

    path = config_path(os.environ)
    config = load_config(path)
    if not config.profiles:
        typer.echo(f"no profiles in {path}: create one with `seml init`", err=True)
        return
    for name, p in config.profiles.items():
        mark = "*" if name == config.current else " "
        who = f"party {p.party}" if p.role == "party" else "operator"
        typer.echo(f"{mark} {name:<16} {who:<20} {p.cas.url or '(no attestation service)'}")


def show(
    name: Annotated[str | None, typer.Argument(help="Profile (default: the selected one).")] = None,
) -> None:
    """Print a profile, and which environment variables override its values now."""
    from seml.cli._machine import selected
    from seml.profiles import ConfigFile, dump_config, load_config, profile_variables

    chosen = selected()
    if name is not None:
        config = load_config(chosen.path)
        if name not in config.profiles:
            raise UsageError(f"no profile {name!r} in {chosen.path}")
        profile, how = config.profiles[name], "asked for"
    elif chosen.profile is None or chosen.name is None:
        raise UsageError(f"no profile selected (none current in {chosen.path}): see `seml init`")
    else:
        name, profile, how = chosen.name, chosen.profile, f"selected by {chosen.how}"
    typer.echo(f"# profile {name} ({how}) from {chosen.path}")
    body = dump_config(ConfigFile(profiles={name: profile}))
    typer.echo("\n".join(x for x in body.splitlines() if not x.startswith("#")))
    overridden = [v for v in profile_variables(profile) if os.environ.get(v)]
    for var in overridden:
        typer.echo(f"# ${var} is set: it overrides the profile's value")


def use(name: Annotated[str, typer.Argument(help="The profile to make current.")]) -> None:
    """Make a profile the current one."""
    from seml.profiles import ConfigFile, config_path, load_config, save_config

    path = config_path(os.environ)
    config = load_config(path)
    if name not in config.profiles:
        known = ", ".join(sorted(config.profiles)) or "none"
        raise UsageError(f"no profile {name!r} in {path} (profiles: {known})")
    save_config(path, ConfigFile(current=name, profiles=config.profiles))
    typer.echo(f"current profile: {name}")

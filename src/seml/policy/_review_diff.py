"""The changes from one session version to the next, item by item, in data and words.

Pure: two sessions in, a list of `Change` out, in a stable order (parties, approval, security,
storage, services, secrets, volumes). Each change names its area (`party`, `approval`,
`security`, `storage`, `service`, `secret`, `volume`), the item, the field, whether something
was added, removed or changed, the values before and after, and a sentence.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from seml.policy._keys import fingerprint, parse_public_key
from seml.policy._model import Export, Secret, Service, Session, Volume

__all__ = ["Change", "changes_between"]


class Change(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    area: str
    name: str | None
    field: str | None
    change: str  # added | removed | changed
    before: Any
    after: Any
    words: str


def _short(value: Any) -> str:
    if isinstance(value, list):
        text = " ".join(str(v) for v in value)
    elif value is None:
        text = "(none)"
    else:
        text = str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= 70 else text[:67] + "..."


class _Changes:
    def __init__(self) -> None:
        self.items: list[Change] = []

    def add(
        self,
        area: str,
        name: str | None,
        field: str | None,
        change: str,
        before: Any,
        after: Any,
        words: str,
    ) -> None:
        self.items.append(
            Change(
                area=area,
                name=name,
                field=field,
                change=change,
                before=before,
                after=after,
                words=words,
            )
        )

    def values(
        self, area: str, name: str, field: str, label: str, before: list[Any], after: list[Any]
    ) -> None:
        """Each value added to or removed from a list (measurements, readers, platforms)."""
        for v in after:
            if v not in before:
                self.add(area, name, field, "added", None, v, f"{area} {name}: {label} {v} added")
        for v in before:
            if v not in after:
                self.add(
                    area, name, field, "removed", v, None, f"{area} {name}: {label} {v} removed"
                )

    def mapping(
        self,
        area: str,
        name: str,
        field: str,
        label: str,
        before: dict[str, Any],
        after: dict[str, Any],
    ) -> None:
        """Each key of a mapping (environment, files, volume mounts) added, removed or changed."""
        for k in sorted(set(before) | set(after)):
            b, a = before.get(k), after.get(k)
            if b == a:
                continue
            if b is None:
                self.add(
                    area,
                    name,
                    f"{field}.{k}",
                    "added",
                    None,
                    a,
                    f"{area} {name}: {label} {k} added: {_short(a)}",
                )
            elif a is None:
                self.add(
                    area,
                    name,
                    f"{field}.{k}",
                    "removed",
                    b,
                    None,
                    f"{area} {name}: {label} {k} removed",
                )
            else:
                self.add(
                    area,
                    name,
                    f"{field}.{k}",
                    "changed",
                    b,
                    a,
                    f"{area} {name}: {label} {k} changed: {_short(b)} -> {_short(a)}",
                )

    def whole(self, area: str, name: str, field: str, before: Any, after: Any) -> None:
        if before != after:
            self.add(
                area,
                name,
                field,
                "changed",
                before,
                after,
                f"{area} {name}: {field} changed: {_short(before)} -> {_short(after)}",
            )


def _dump(value: Any) -> Any:
    return None if value is None else value.model_dump(mode="json", by_alias=True)


def _exports(c: _Changes, area: str, name: str, before: list[Export], after: list[Export]) -> None:
    def pins(exports: list[Export]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for e in exports:
            out.setdefault(e.session, set()).add(e.session_hash)
        return out

    b, a = pins(before), pins(after)
    for session in sorted(set(b) | set(a)):
        old, new = sorted(b.get(session, set())), sorted(a.get(session, set()))
        if old == new:
            continue
        if not old:
            words = f"{area} {name}: now exported to session {session} (pinned {', '.join(new)})"
            c.add(area, name, "export", "added", None, {"session": session, "pinned": new}, words)
        elif not new:
            words = f"{area} {name}: no longer exported to session {session}"
            c.add(area, name, "export", "removed", {"session": session, "pinned": old}, None, words)
        else:
            words = (
                f"{area} {name}: export to session {session} re-pinned from {', '.join(old)} to "
                f"{', '.join(new)}"
            )
            c.add(
                area,
                name,
                "export",
                "changed",
                {"session": session, "pinned": old},
                {"session": session, "pinned": new},
                words,
            )
    services_b = {(e.session, e.session_hash): sorted(e.services) for e in before}
    services_a = {(e.session, e.session_hash): sorted(e.services) for e in after}
    for key in sorted(set(services_b) & set(services_a)):
        c.values(
            area,
            name,
            f"export.{key[0]}.services",
            f"receiving service of {key[0]}",
            services_b[key],
            services_a[key],
        )


def _service(c: _Changes, b: Service, a: Service) -> None:
    n = a.name
    c.whole("service", n, "command", list(b.command), list(a.command))
    c.values(
        "service", n, "measurements", "measurement", list(b.measurements), list(a.measurements)
    )
    if (b.platforms is None) != (a.platforms is None):
        c.add(
            "service",
            n,
            "platforms",
            "changed",
            b.platforms,
            a.platforms,
            f"service {n}: runs on "
            + ("any machine" if a.platforms is None else f"only {', '.join(a.platforms)}")
            + " (was "
            + ("any machine" if b.platforms is None else f"only {', '.join(b.platforms)}")
            + ")",
        )
    else:
        c.values(
            "service", n, "platforms", "platform", list(b.platforms or []), list(a.platforms or [])
        )
    c.mapping(
        "service",
        n,
        "environment",
        "environment variable",
        dict(b.environment),
        dict(a.environment),
    )
    c.mapping("service", n, "files", "file", dict(b.files), dict(a.files))
    c.mapping("service", n, "volumes", "volume", dict(b.volumes), dict(a.volumes))
    c.whole("service", n, "confidential_vm", _dump(b.confidential_vm), _dump(a.confidential_vm))
    c.whole("service", n, "requires", list(b.requires), list(a.requires))
    c.whole("service", n, "nvidia_gpu", _dump(b.nvidia_gpu), _dump(a.nvidia_gpu))


def _secret(c: _Changes, b: Secret, a: Secret) -> None:
    n = a.name
    for field in ("kind", "size", "common_name", "provided_by"):
        c.whole("secret", n, field, getattr(b, field), getattr(a, field))
    c.whole("secret", n, "import", _dump(b.import_), _dump(a.import_))
    c.values("secret", n, "readers", "reader", list(b.readers), list(a.readers))
    _exports(c, "secret", n, list(b.export), list(a.export))


def _volume(c: _Changes, b: Volume, a: Volume) -> None:
    c.whole("volume", a.name, "import", _dump(b.import_), _dump(a.import_))
    _exports(c, "volume", a.name, list(b.export), list(a.export))


def _items(c: _Changes, area: str, before: list[Any], after: list[Any], compare: Any) -> None:
    b = {x.name: x for x in before}
    a = {x.name: x for x in after}
    for name in [x.name for x in after if x.name not in b]:
        c.add(area, name, None, "added", None, _dump(a[name]), f"{area} {name} added")
    for name in [x.name for x in before if x.name not in a]:
        c.add(area, name, None, "removed", _dump(b[name]), None, f"{area} {name} removed")
    for name in [x.name for x in after if x.name in b]:
        compare(c, b[name], a[name])


def changes_between(before: Session, after: Session) -> list[Change]:
    c = _Changes()
    for p in sorted(set(before.parties) | set(after.parties)):
        old, new = before.parties.get(p), after.parties.get(p)
        fp_old = None if old is None else fingerprint(parse_public_key(old))
        fp_new = None if new is None else fingerprint(parse_public_key(new))
        if fp_old == fp_new:
            continue
        if fp_old is None:
            c.add("party", p, None, "added", None, fp_new, f"party {p} added (key {fp_new})")
        elif fp_new is None:
            c.add("party", p, None, "removed", fp_old, None, f"party {p} removed")
        else:
            c.add(
                "party",
                p,
                "key",
                "changed",
                fp_old,
                fp_new,
                f"party {p}: key changed from {fp_old} to {fp_new}",
            )
    for field in ("create", "update"):
        rb, ra = getattr(before.approval, field), getattr(after.approval, field)
        if rb.to_data() != ra.to_data():
            c.add(
                "approval",
                field,
                None,
                "changed",
                rb.to_data(),
                ra.to_data(),
                f"approval to {field}: {rb.describe()} -> {ra.describe()}",
            )
    c.values(
        "security",
        "weaknesses",
        "tolerate",
        "tolerated weakness",
        list(before.security.tolerate),
        list(after.security.tolerate),
    )
    c.values(
        "security",
        "advisories",
        "ignore_advisories",
        "ignored advisory",
        list(before.security.ignore_advisories),
        list(after.security.ignore_advisories),
    )
    c.whole(
        "storage",
        "location",
        "location",
        before.storage.location if before.storage else None,
        after.storage.location if after.storage else None,
    )
    _items(c, "service", list(before.services), list(after.services), _service)
    _items(c, "secret", list(before.secrets), list(after.secrets), _secret)
    _items(c, "volume", list(before.volumes), list(after.volumes), _volume)
    return c.items

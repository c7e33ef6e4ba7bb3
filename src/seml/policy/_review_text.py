"""A `Review` in plain words, for a terminal or a log: what `seml session review` prints."""

from __future__ import annotations

import shlex

from seml.policy._review import ExportReview, ImportReview, Review, ServiceReview

__all__ = ["render_review"]

_FILE_LINES = 30


def _command(argv: list[str]) -> str:
    return shlex.join(argv) if argv else "(given by whoever runs it: `seml run ... -- COMMAND`)"


def _export(e: ExportReview) -> list[str]:
    head = (
        f"exported to session {e.session}, services {', '.join(e.services)}, pinned at "
        f"{e.session_hash}"
    )
    lines = [head + (f" ({e.target})" if e.target else " (that version was not readable here)")]
    for t in e.target_services:
        where = "any machine" if t.platforms is None else f"only {', '.join(t.platforms)}"
        lines.append(f"  {t.name} there runs: {_command(t.command)}")
        lines.append(f"  {t.name} there is measured as: {', '.join(t.measurements)}; on {where}")
    return lines


def _import(i: ImportReview, what: str) -> str:
    text = f"imported from session {i.session} (its {what} {i.item})"
    if i.exported_here is True:
        return text + "; its latest version exports it to this version"
    if i.exported_here is False:
        pinned = ", ".join(i.pinned or []) or "no version"
        return text + f"; its latest version exports it to {pinned}, NOT to this version"
    return text


def _service(s: ServiceReview, session: str) -> list[str]:
    lines = [f"  {s.name}", f"    command: {_command(s.command)}"]
    lines.append(f"    code (allowed measurements): {', '.join(s.measurements)}")
    lines.append(
        "    machines: any whose evidence passes"
        if s.platforms is None
        else f"    machines: only {', '.join(s.platforms)}"
    )
    lines += [f"    evidence: {r}" for r in s.requirements]
    for use in s.secrets:
        lines.append(f"    receives secret {use.secret} as {', '.join(use.where)}")
    for v in s.volumes:
        whose = "" if v.owner == session else f" (session {v.owner}'s volume {v.owner_volume})"
        lines.append(f"    mounts volume {v.volume}{whose} at {v.path}")
    for name, value in s.environment.items():
        lines.append(f"    environment {name}={value}")
    for path, text in s.files.items():
        body = text.splitlines()
        lines.append(f"    file {path} ({len(body)} lines):")
        lines += [f"      | {line}" for line in body[:_FILE_LINES]]
        if len(body) > _FILE_LINES:
            lines.append(f"      | ... {len(body) - _FILE_LINES} more lines (--json shows all)")
    return lines


def render_review(review: Review) -> list[str]:
    r = review
    lines = [f"session {r.session} {r.hash}" + (f" ({r.status})" if r.status else "")]
    lines.append(f"predecessor: {r.predecessor or '(none: a first version)'}")
    if r.changes is not None:
        lines.append("")
        if r.changes:
            lines.append(f"Changes from {r.compared_with}:")
            lines += [f"  - {c.words}" for c in r.changes]
        else:
            lines.append(f"No changes from {r.compared_with}.")
    elif r.predecessor is not None:
        lines += ["", f"Changes: not compared (the version {r.predecessor} was not readable)."]
    lines += ["", "Parties:"]
    lines += [f"  {p.name}: key {p.fingerprint}" for p in r.parties]
    lines += ["", "Approval:"]
    lines.append(f"  to create: {r.approval['create'].words}")
    lines.append(f"  to update: {r.approval['update'].words}")
    lines += ["", "Tolerated weaknesses:" if r.tolerated else "Tolerated weaknesses: none"]
    lines += [f"  - {w.weakness}: {w.words}" for w in r.tolerated]
    if r.ignore_advisories:
        lines.append(f"Ignored advisories: {', '.join(r.ignore_advisories)}")
    lines += ["", "Services:" if r.services else "Services: none"]
    for s in r.services:
        lines += _service(s, r.session)
    lines += ["", "Secrets:" if r.secrets else "Secrets: none"]
    for x in r.secrets:
        kind = x.kind or "imported"
        size = f", {x.size}" if x.size else ""
        lines.append(f"  {x.name} ({kind}{size}): {x.source}")
        lines.append(f"    read by: {', '.join(x.readers) or 'no service'}")
        if x.imported_from is not None:
            lines.append(f"    {_import(x.imported_from, 'secret')}")
        for e in x.exported_to:
            lines += [f"    {line}" for line in _export(e)]
    lines += ["", "Volumes:" if r.volumes else "Volumes: none"]
    for v in r.volumes:
        mounts = ", ".join(f"{s} at {p}" for s, p in v.mounted_by.items()) or "no service"
        lines.append(f"  {v.name}: mounted by {mounts}")
        if v.imported_from is not None:
            lines.append(f"    {_import(v.imported_from, 'volume')}")
        for e in v.exported_to:
            lines += [f"    {line}" for line in _export(e)]
    if r.storage:
        lines += ["", f"Storage: {r.storage}"]
    if r.notes:
        lines += ["", "Notes:"]
        lines += [f"  - {n}" for n in r.notes]
    return lines

"""Help text is wrapped by the terminal, not by the source file's line length."""

from __future__ import annotations

import inspect
import re

import typer
from typer.models import CommandInfo, TyperInfo

from seml.cli._app import app, reflow, register


def test_reflow_joins_wrapped_lines_and_keeps_paragraphs_and_items() -> None:
    doc = """First line.

    A paragraph wrapped
    in the source.

    - an item
    - another item
      continued
    """
    assert reflow(doc) == (
        "First line.\n\nA paragraph wrapped in the source.\n\n"
        "- an item\n- another item\n  continued"
    )


def _text(info: CommandInfo | TyperInfo) -> str:
    """The help typer shows: the given help, else the callback's docstring."""
    if isinstance(info.help, str):
        return info.help
    callback = info.callback  # typer's placeholder for "none given" is falsy
    return inspect.cleandoc((callback.__doc__ if callback else None) or "")


def _helps(group: typer.Typer, path: str) -> list[tuple[str, str]]:
    found = []
    for info in group.registered_commands:
        found.append((f"{path} {info.name or info.callback}", _text(info)))
    for sub in group.registered_groups:
        found.append((f"{path} {sub.name}", _text(sub)))
        if sub.typer_instance is not None:
            found.extend(_helps(sub.typer_instance, f"{path} {sub.name}"))
    return found


def test_no_command_help_breaks_a_sentence_at_the_source_line_length() -> None:
    register()
    helps = _helps(app, "seml")
    assert len(helps) > 40
    broken = [
        (name, line)
        for name, text in helps
        for line in text.split("\n")
        if re.match(r"^[a-z(`]", line)  # a line that continues a sentence
    ]
    assert broken == []

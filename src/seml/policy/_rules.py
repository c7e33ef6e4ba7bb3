"""Approval rules: who must approve a change before it takes effect.

A rule is either a plain list of parties, meaning all of them, or
``{require: all | N, of: [party | rule, ...], veto: [party, ...]}``: at least N of the items
approve (a party approves by signing; a nested rule approves when it is met) and every veto
party approves. A veto party's rejection therefore defeats the rule, as do enough rejections
that N can no longer be reached. Rules nest, as SCONE's policy board allows.

Pure: names in, verdicts out. Nothing here knows about sessions, so the same rule type serves
session creation and updates and, later, other approvals (model releases).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["ApprovalRule", "RuleState", "RuleVerdict"]

_PARTY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_MAX_DEPTH = 8
_RULE_KEYS = ("require", "of", "veto")


class RuleState(StrEnum):
    SATISFIED = "satisfied"  # the approvals given meet the rule
    POSSIBLE = "possible"  # not met yet, but the parties still undecided can meet it
    DEFEATED = "defeated"  # cannot be met whatever the undecided parties do


@dataclass(frozen=True)
class RuleVerdict:
    """A rule evaluated against the approvals and rejections given so far.

    `needs` says, one sentence each, what is still missing ("bob must approve", "needs 1 more
    of bob, carol", "alice must approve (veto)"); `signers` says the same as a noun phrase for
    error messages ("bob", "1 more of bob, carol and alice (veto)"); `reason` why the rule is
    defeated; `waiting` the parties whose approval would still count.
    """

    state: RuleState
    needs: tuple[str, ...] = ()
    signers: str = ""
    reason: str = ""
    waiting: frozenset[str] = frozenset()

    @property
    def missing(self) -> str:
        return "; ".join(self.needs)


def _join(words: Iterable[str]) -> str:
    return ", ".join(words)


@dataclass(frozen=True)
class _Node:
    """One level of evaluation: met, still meetable, and the words for what is missing."""

    met: bool
    meetable: bool
    needs: tuple[str, ...]
    noun: str
    reasons: tuple[str, ...]
    waiting: frozenset[str]


@dataclass(frozen=True)
class ApprovalRule:
    """`require` None means all of `of`; otherwise at least that many (1 <= N < len(of))."""

    of: tuple[str | ApprovalRule, ...]
    require: int | None = None
    veto: tuple[str, ...] = ()

    # -- building ---------------------------------------------------------------------

    @classmethod
    def all_of(cls, parties: Iterable[str]) -> ApprovalRule:
        return cls.parse(list(parties))

    @classmethod
    def parse(cls, data: Any) -> ApprovalRule:
        """A rule from its plain-data form; ValueError saying what is wrong, in rule terms."""
        if isinstance(data, ApprovalRule):
            return data
        rule = cls._parse(data, "", 1)
        seen: set[str] = set()
        for party in rule._mentions():
            if party in seen:
                raise ValueError(
                    f"{party} is listed twice in the rule (a party counts once: list it in one "
                    "place)"
                )
            seen.add(party)
        return rule

    @classmethod
    def _parse(cls, data: Any, where: str, depth: int) -> ApprovalRule:
        at = f" (at {where})" if where else ""
        if depth > _MAX_DEPTH:
            raise ValueError(f"rules nest at most {_MAX_DEPTH} deep{at}")
        if isinstance(data, list | tuple):
            require: Any = "all"
            items: Any = data
            veto: Any = []
        elif isinstance(data, dict):
            unknown = sorted(str(k) for k in data if k not in _RULE_KEYS)
            if unknown:
                raise ValueError(
                    f"unknown key {unknown[0]} in a rule{at}: a rule has require, of and veto"
                )
            if "of" not in data:
                raise ValueError(f"a rule needs `of`, the parties or rules it counts{at}")
            require, items, veto = data.get("require", "all"), data["of"], data.get("veto", [])
        else:
            raise ValueError(
                f"a rule is a list of parties or {{require, of, veto}}, not "
                f"{type(data).__name__}{at}"
            )
        if not isinstance(items, list | tuple):
            raise ValueError(f"`of` is a list of parties or rules{at}")
        if not items:
            raise ValueError(
                f"an empty rule would need nobody's approval{at}: list at least one party"
            )
        of: list[str | ApprovalRule] = []
        for i, item in enumerate(items):
            if isinstance(item, str):
                of.append(cls._party(item, at))
            elif not isinstance(item, list | tuple | dict):
                raise ValueError(f"{item!r} is not a party name or a rule{at}")
            else:
                of.append(cls._parse(item, f"{where}.of.{i}" if where else f"of.{i}", depth + 1))
        if not isinstance(veto, list | tuple):
            raise ValueError(f"`veto` is a list of parties{at}")
        vetoes = tuple(cls._party(v, at) for v in veto)
        if require == "all":
            needed = None
        elif isinstance(require, int) and not isinstance(require, bool):
            if require < 1:
                raise ValueError(f"require {require}: a rule needs at least 1 approval{at}")
            if require > len(of):
                raise ValueError(
                    f"require {require} of {len(of)}: the rule lists only {len(of)} "
                    f"{'item' if len(of) == 1 else 'items'}, so it could never be met{at}"
                )
            needed = None if require == len(of) else require
        else:
            raise ValueError(f"require is `all` or a number, not {require!r}{at}")
        return cls(of=tuple(of), require=needed, veto=vetoes)

    @staticmethod
    def _party(value: Any, at: str) -> str:
        if not isinstance(value, str) or not _PARTY.match(value):
            raise ValueError(f"{value!r} is not a party name{at}")
        return value

    # -- reading ----------------------------------------------------------------------

    def _mentions(self) -> Iterator[str]:
        yield from self.veto
        for item in self.of:
            if isinstance(item, str):
                yield item
            else:
                yield from item._mentions()

    def parties(self) -> frozenset[str]:
        """Every party the rule names, at any depth."""
        return frozenset(self._mentions())

    @property
    def needed(self) -> int:
        return len(self.of) if self.require is None else self.require

    @property
    def is_plain(self) -> bool:
        """All of a flat list of parties: today's (and the shortest) form."""
        return self.require is None and not self.veto and all(isinstance(i, str) for i in self.of)

    def to_data(self) -> list[str] | dict[str, Any]:
        """The canonical plain-data form (what a session's hash covers): a list for all of a
        flat list of parties, else {require, of, veto} with require a number below len(of)."""
        if self.is_plain:
            return [str(i) for i in self.of]
        return {
            "require": "all" if self.require is None else self.require,
            "of": [i if isinstance(i, str) else i.to_data() for i in self.of],
            "veto": list(self.veto),
        }

    def describe(self) -> str:
        """The rule in words: "all of alice, bob", "2 of alice, bob, carol; alice must approve
        (veto)"."""
        items = _join(i if isinstance(i, str) else f"({i.describe()})" for i in self.of)
        if len(self.of) == 1 and self.require is None:
            text = items
        elif self.require is None:
            text = f"all of {items}"
        else:
            text = f"{self.require} of {items}"
        if self.veto:
            text += f"; {_join(self.veto)} must approve (veto)"
        return text

    def __str__(self) -> str:
        return self.describe()

    # -- evaluating -------------------------------------------------------------------

    def evaluate(self, approved: Iterable[str], rejected: Iterable[str] = ()) -> RuleVerdict:
        """Met, still possible or defeated, given who approved and who rejected.

        A party listed in both counts as having rejected (a decision cannot be both).
        """
        no = frozenset(rejected)
        yes = frozenset(approved) - no
        node = self._evaluate(yes.__contains__, no.__contains__)
        if node.met:
            return RuleVerdict(RuleState.SATISFIED)
        if not node.meetable:
            return RuleVerdict(RuleState.DEFEATED, reason="; ".join(node.reasons))
        return RuleVerdict(
            RuleState.POSSIBLE, needs=node.needs, signers=node.noun, waiting=node.waiting
        )

    def _evaluate(self, yes: Callable[[str], bool], no: Callable[[str], bool]) -> _Node:
        vetoed = [p for p in self.veto if no(p)]
        veto_pending = [p for p in self.veto if not yes(p) and not no(p)]
        met = 0
        pending: list[tuple[str, _Node | None]] = []  # (words, nested evaluation)
        dead: list[str] = []
        reasons: list[str] = [f"{p} rejected (veto)" for p in vetoed]
        for item in self.of:
            if isinstance(item, str):
                if yes(item):
                    met += 1
                elif no(item):
                    dead.append(item)
                else:
                    pending.append((item, None))
                continue
            node = item._evaluate(yes, no)
            if node.met:
                met += 1
            elif not node.meetable:
                dead.append(f"({item.describe()})")
                reasons.extend(node.reasons)
            else:
                pending.append((f"({node.noun})" if " " in node.noun else node.noun, node))
        need = self.needed
        reachable = met + len(pending)
        if reachable < need:
            rule = "all of" if self.require is None else f"{need} of"
            words = _join(i if isinstance(i, str) else f"({i.describe()})" for i in self.of)
            who = _join(d for d in dead if not d.startswith("("))
            if who:
                reasons.append(f"{who} rejected ({rule} {words} must approve)")
            else:
                reasons.append(f"{rule} {words} must approve, and that can no longer happen")
        meetable = not vetoed and reachable >= need
        of_met = met >= need
        if (of_met and not veto_pending and not vetoed) or not meetable:
            return _Node(
                met=meetable and of_met and not veto_pending,
                meetable=meetable,
                needs=(),
                noun="",
                reasons=tuple(reasons),
                waiting=frozenset(),
            )
        needs: list[str] = []
        nouns: list[str] = []
        waiting: set[str] = set(veto_pending)
        if not of_met:
            more = need - met
            if more == len(pending):
                # Every undecided item is needed: say so item by item.
                parties = [w for w, n in pending if n is None]
                if parties:
                    needs.append(f"{_join(parties)} must approve")
                for _, n in pending:
                    if n is not None:
                        needs.extend(n.needs)
                nouns.append(_join(w for w, _ in pending))
            else:
                words = _join(w for w, _ in pending)
                needs.append(f"needs {more} more of {words}")
                nouns.append(f"{more} more of {words}")
            for w, n in pending:
                waiting |= {w} if n is None else n.waiting
        if veto_pending:
            needs.append(f"{_join(veto_pending)} must approve (veto)")
            nouns.append(f"{_join(veto_pending)} (veto)")
        return _Node(
            met=False,
            meetable=True,
            needs=tuple(needs),
            noun=" and ".join(nouns),
            reasons=(),
            waiting=frozenset(waiting),
        )

    # -- pydantic ---------------------------------------------------------------------

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """A field typed `ApprovalRule` accepts the plain-data form and dumps it back."""
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            cls.parse,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda rule: rule.to_data()
            ),
        )

"""Signature policies over member roles: ``AND``, ``OR``, ``OutOf`` (the policy language
of Hyperledger Fabric's endorsement and lifecycle policies, "Endorsement policies",
Fabric documentation, with its ``OutOf(n, ...)``), over principals ``'ORG.ROLE'``.

Principals::

    'CMCC.member'    the member CMCC (every member has the role ``member``)
    'CMCC.operator'  CMCC, if the manifest gives it the role ``operator``
    'CMCC.finance'   a person whose certificate from CMCC names the role ``finance``
    '*.member'       any member; inside AND / OutOf it stands for one principal per
                     member (so ``OutOf(3, '*.member')`` is three distinct members),
                     alone it is any one of them
    ALL              every member of the manifest in force (the default)

Evaluation counts *distinct keys* only (TUF's rule for thresholds, Fabric's rule that
one identity satisfies one principal): each signing key satisfies at most one
principal of the whole policy, so a quorum can never be made of one key's repeated
signatures.  :func:`satisfied` searches the assignment of keys to principals; the
policies and consortia here are small (tens of principals).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from governance.errors import PolicyError

_TOKEN = re.compile(r"\s*(?:(AND|OR|OutOf|ALL)\b|(\()|(\))|(,)|('([^']*)')|([0-9]+))")
_PRINCIPAL = re.compile(r"(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,63}?)\.([a-z][a-z0-9_-]{0,31})")


@dataclass(frozen=True)
class Principal:
    org: str  # a member id or "*"
    role: str

    def text(self) -> str:
        return f"'{self.org}.{self.role}'"


@dataclass(frozen=True)
class Gate:
    op: str  # "AND" | "OR" | "OutOf"
    k: int
    args: tuple[Node, ...]

    def text(self) -> str:
        inner = ", ".join(arg.text() for arg in self.args)
        return f"OutOf({self.k}, {inner})" if self.op == "OutOf" else f"{self.op}({inner})"


@dataclass(frozen=True)
class All:
    def text(self) -> str:
        return "ALL"


Node = Principal | Gate | All


def parse(text: str) -> Node:
    """Parse a policy; :class:`PolicyError` names the position of a mistake."""
    if not isinstance(text, str) or not text.strip():
        raise PolicyError(f"policy: expected an expression such as AND('A.member', 'B.member'), found {text!r}")
    tokens: list[tuple[str, str, int]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None:
            raise PolicyError(f"policy {text!r}: unexpected text at position {position}: {text[position:][:12]!r}")
        if match.group(1):
            tokens.append(("word", match.group(1), match.start(1)))
        elif match.group(2):
            tokens.append(("(", "(", match.start(2)))
        elif match.group(3):
            tokens.append((")", ")", match.start(3)))
        elif match.group(4):
            tokens.append((",", ",", match.start(4)))
        elif match.group(5):
            tokens.append(("principal", match.group(6), match.start(5)))
        else:
            tokens.append(("int", match.group(7), match.start(7)))
        position = match.end()
    node, end = _expression(text, tokens, 0)
    if end != len(tokens):
        raise PolicyError(f"policy {text!r}: unexpected {tokens[end][1]!r} at position {tokens[end][2]}")
    return node


def _expect(text: str, tokens: list, at: int, kind: str) -> int:
    if at >= len(tokens) or tokens[at][0] != kind:
        found = tokens[at][1] if at < len(tokens) else "the end"
        raise PolicyError(f"policy {text!r}: expected {kind!r}, found {found!r}")
    return at + 1


def _expression(text: str, tokens: list, at: int) -> tuple[Node, int]:
    if at >= len(tokens):
        raise PolicyError(f"policy {text!r}: unexpected end")
    kind, value, where = tokens[at]
    if kind == "principal":
        match = _PRINCIPAL.fullmatch(value)
        if match is None:
            raise PolicyError(f"policy {text!r}: principal {value!r} at position {where}: expected 'ORG.role' "
                              "(a member id or *, a lowercase role)")
        return Principal(match.group(1), match.group(2)), at + 1
    if kind == "word" and value == "ALL":
        return All(), at + 1
    if kind != "word":
        raise PolicyError(f"policy {text!r}: expected AND, OR, OutOf, ALL or a principal at position {where}, "
                          f"found {value!r}")
    at = _expect(text, tokens, at + 1, "(")
    k = 0
    if value == "OutOf":
        if at >= len(tokens) or tokens[at][0] != "int":
            raise PolicyError(f"policy {text!r}: OutOf at position {where}: expected a count first")
        k = int(tokens[at][1])
        at = _expect(text, tokens, at + 1, ",")
    args: list[Node] = []
    while True:
        node, at = _expression(text, tokens, at)
        args.append(node)
        if at < len(tokens) and tokens[at][0] == ",":
            at += 1
            continue
        at = _expect(text, tokens, at, ")")
        break
    if value == "OutOf" and not 1 <= k <= max(len(args), 1) and not any(
            isinstance(a, Principal) and a.org == "*" for a in args):
        raise PolicyError(f"policy {text!r}: OutOf({k}, ...) at position {where}: expected 1 <= k <= {len(args)}")
    if value == "OutOf" and k < 1:
        raise PolicyError(f"policy {text!r}: OutOf at position {where}: expected k >= 1, found {k}")
    return Gate(value, k if value == "OutOf" else (len(args) if value == "AND" else 1), tuple(args)), at


def normalise(text: str) -> str:
    """The canonical text of a policy (what entries store)."""
    return parse(text).text()


# ---------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True)
class Signer:
    """One signing key and the principals it can stand for."""

    key: bytes
    principals: frozenset[str]  # "ORG.role" strings
    label: str = ""  # who (for messages): a member id, or a person's certificate id


def expand(node: Node, members: Sequence[str]) -> Node:
    """Resolve ALL and wildcards against the member ids in force."""
    if isinstance(node, All):
        return Gate("AND", len(members), tuple(Principal(m, "member") for m in members))
    if isinstance(node, Principal):
        if node.org == "*":
            return Gate("OR", 1, tuple(Principal(m, node.role) for m in members))
        return node
    args: list[Node] = []
    for arg in node.args:
        if isinstance(arg, Principal) and arg.org == "*" and node.op in ("AND", "OutOf"):
            args.extend(Principal(m, arg.role) for m in members)
        else:
            args.append(expand(arg, members))
    k = len(args) if node.op == "AND" else node.k
    if node.op == "OutOf" and k > len(args):
        raise PolicyError(f"policy {node.text()}: OutOf({k}, ...) over {len(args)} principals can never be met")
    return Gate(node.op, k, tuple(args))


def principals_of(node: Node) -> set[str]:
    if isinstance(node, Principal):
        return {f"{node.org}.{node.role}"}
    if isinstance(node, All):
        return set()
    return set().union(*(principals_of(arg) for arg in node.args))


def _assignments(node: Node, signers: Sequence[Signer], used: frozenset[int]) -> Iterator[frozenset[int]]:
    """Each way of meeting ``node`` with signers not in ``used`` (the signers it consumes)."""
    if isinstance(node, Principal):
        name = f"{node.org}.{node.role}"
        for position, signer in enumerate(signers):
            if position not in used and name in signer.principals:
                yield used | {position}
        return
    if isinstance(node, All):  # pragma: no cover - expanded before evaluation
        raise PolicyError("policy ALL must be expanded against the members first")
    yield from _choose(node.args, node.k, signers, used)


def _choose(args: Sequence[Node], k: int, signers: Sequence[Signer], used: frozenset[int]) -> Iterator[frozenset[int]]:
    if k == 0:
        yield used
        return
    if len(args) < k:
        return
    first, rest = args[0], args[1:]
    seen: set[frozenset[int]] = set()
    for after_first in _assignments(first, signers, used):
        for result in _choose(rest, k - 1, signers, after_first):
            if result not in seen:
                seen.add(result)
                yield result
    yield from _choose(rest, k, signers, used)


def distinct(signers: Iterable[Signer]) -> list[Signer]:
    """One signer per key: a key that signed twice (or under two names) counts once, with
    the principals of its first signature only."""
    result: dict[bytes, Signer] = {}
    for signer in signers:
        result.setdefault(signer.key, signer)
    return list(result.values())


def satisfied(node: Node, signers: Iterable[Signer]) -> bool:
    """Whether distinct keys among ``signers`` meet ``node`` (already expanded)."""
    unique = distinct(signers)
    return next(_assignments(node, unique, frozenset()), None) is not None


def can_principal_matter(node: Node, principals: Iterable[str]) -> bool:
    """Whether a signer with ``principals`` could stand for any principal of ``node``."""
    return bool(principals_of(node) & set(principals))

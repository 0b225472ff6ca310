"""The policy language (governance.policy): parsing, canonical text, wildcard
expansion, and evaluation with distinct keys only."""

import pytest

from governance.errors import PolicyError
from governance.policy import Signer, expand, normalise, parse, satisfied


def _signers(*pairs: tuple[str, str]) -> list[Signer]:
    return [Signer(key.encode(), frozenset({principal})) for key, principal in pairs]


def test_canonical_text_round_trips() -> None:
    for text in ("ALL", "AND('A.member', 'B.finance')", "OR(AND('A.x', 'B.y'), 'C.member')",
                 "OutOf(2, '*.member')", "OutOf(1, 'cmcc.gov.ops')"):
        assert normalise(text) == text
        assert normalise(normalise(text).replace(", ", ",")) == text


@pytest.mark.parametrize("text, match", [
    ("", "expected an expression"), ("AND(", "unexpected end"), ("AND('A.member'", "expected '\\)'"),
    ("OutOf(3, 'A.member', 'B.member')", "1 <= k <= 2"), ("'A'", "expected 'ORG.role'"),
    ("'A.Finance'", "expected 'ORG.role'"), ("XOR('A.member')", "unexpected text"),
    ("AND('A.member') 'B.member'", "unexpected"), ("OutOf('A.member')", "a count first"),
])
def test_malformed_policies_name_the_mistake(text: str, match: str) -> None:
    with pytest.raises(PolicyError, match=match):
        parse(text)


def test_wildcards_and_all_expand_against_the_members() -> None:
    members = ["A", "B", "C"]
    assert expand(parse("ALL"), members).text() == "AND('A.member', 'B.member', 'C.member')"
    assert expand(parse("OutOf(2, '*.member')"), members).text() == "OutOf(2, 'A.member', 'B.member', 'C.member')"
    assert expand(parse("'*.finance'"), members).text() == "OR('A.finance', 'B.finance', 'C.finance')"
    with pytest.raises(PolicyError, match="can never be met"):
        expand(parse("OutOf(4, '*.member')"), members)


def test_evaluation_assigns_each_key_to_one_principal() -> None:
    node = expand(parse("AND('A.finance', OR('B.finance', 'B.marketing'))"), ["A", "B"])
    assert satisfied(node, _signers(("a", "A.finance"), ("b", "B.marketing")))
    assert not satisfied(node, _signers(("a", "A.finance")))
    assert not satisfied(node, _signers(("a", "A.finance"), ("a", "B.marketing")))  # one key, twice
    # a signer that fits two principals is placed where the policy needs it
    flexible = [Signer(b"x", frozenset({"A.finance", "B.finance"})), Signer(b"y", frozenset({"A.finance"}))]
    assert satisfied(expand(parse("AND('A.finance', 'B.finance')"), ["A", "B"]), flexible)

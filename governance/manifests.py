"""From a passed membership proposal to the membership manifest that executes it.

A passed ``member_add``, ``member_remove``, ``key_rotation``, ``key_revocation`` or
``witness_policy`` proposal changes nothing by itself: the change takes effect when
manifest N+1 -- manifest N with exactly that change -- is on the ledger, signed as
:mod:`ledger_anchor.membership` requires (a threshold of epoch N's keys, a threshold
of epoch N+1's keys, and every new key: the joining member's, a rotated member's new
key).  :func:`successor_for` computes that manifest; every verifier recomputes it and
refuses a manifest that is not it.
"""

from __future__ import annotations

from dataclasses import replace

from governance.documents import Proposal
from governance.errors import ProposalError
from ledger_anchor.membership import Manifest, ManifestMember


def successor_for(proposal: Proposal, current: Manifest) -> Manifest:
    """Manifest N+1 that executes ``proposal`` on ``current`` (manifest N)."""
    content = proposal.content
    members = list(current.members)
    witness_k, threshold = current.witness_k, current.threshold
    revoke: list[bytes] = []

    def find(member_id: str) -> int:
        for position, member in enumerate(members):
            if member.id == member_id:
                return position
        raise ProposalError(f"proposal {proposal.proposal_id}: {member_id!r} is not a member in epoch "
                            f"{current.epoch}")

    if proposal.type == "member_add":
        new = content["member"]
        if current.member(new["id"]) is not None:
            raise ProposalError(f"proposal {proposal.proposal_id}: {new['id']!r} is already a member")
        key = bytes.fromhex(new["sm2_public_key"])
        if key.hex() in current.revoked_keys:
            raise ProposalError(f"proposal {proposal.proposal_id}: the new member's key was revoked before")
        members.append(ManifestMember(new["id"], new["name"], key, tuple(new["roles"]), new["tls_cert_sha256"]))
    elif proposal.type == "member_remove":
        position = find(content["member_id"])
        removed = members.pop(position)
        signers = sum(1 for m in members if m.sm2_public_key is not None)
        witness_k, threshold = min(witness_k, signers), min(threshold, signers)
        if removed.sm2_public_key is not None:
            revoke.append(removed.sm2_public_key)
    elif proposal.type in ("key_rotation", "key_revocation"):
        position = find(content["member_id"])
        old = members[position]
        if proposal.type == "key_rotation":
            key = bytes.fromhex(content["sm2_public_key"])
            if key.hex() in current.revoked_keys or any(m.sm2_public_key == key for m in members):
                raise ProposalError(f"proposal {proposal.proposal_id}: the new key is revoked or already in use")
            members[position] = replace(old, sm2_public_key=key)
        else:
            if old.sm2_public_key is None or old.sm2_public_key.hex() != content["sm2_public_key"]:
                raise ProposalError(f"proposal {proposal.proposal_id}: the key to revoke is not "
                                    f"{content['member_id']!r}'s key in epoch {current.epoch}")
            revoke.append(old.sm2_public_key)
            members[position] = replace(old, sm2_public_key=None)
            signers = sum(1 for m in members if m.sm2_public_key is not None)
            witness_k, threshold = min(witness_k, signers), min(threshold, signers)
    elif proposal.type == "witness_policy":
        witness_k = content["k"]
    else:
        raise ProposalError(f"proposal {proposal.proposal_id}: a {proposal.type} proposal changes no membership")
    successor = current.successor(proposal_id=proposal.proposal_id, members=members, witness_k=witness_k,
                                  threshold=threshold, revoke=revoke)
    try:
        return Manifest.from_body(successor.body())
    except Exception as exc:  # ManifestError: e.g. witness k beyond the members
        raise ProposalError(f"proposal {proposal.proposal_id}: {exc}") from None

"""Membership by epoch: who may sign entries and cosign checkpoints at each point of the log.

The consortium file gives the *genesis* manifest (epoch 0): the log's origin and key,
the members with their SM2 keys, TLS certificate fingerprints and roles, the witness
policy (k of n cosignatures make a checkpoint final) and the manifest threshold.
Every later epoch is a ``membership_manifest`` entry on the log itself, so the
consortium file is only the local bootstrap and the log is the authority.

Manifest N+1 is accepted only if (the root rotation of TUF, "The Update Framework"
specification §5.3.4, with distinct keys only):

* its ``epoch`` is N+1 and its ``previous_sm3`` is the SM3 of manifest N's canonical body;
* origin and log key are those of the genesis manifest;
* it is signed by at least ``threshold(N)`` distinct keys of epoch N's members, by at
  least ``threshold(N+1)`` distinct keys of epoch N+1's members, and by every key that
  is new in N+1 (a joining member's, a rotated member's new key);
* no key appears twice, and no key revoked in an earlier epoch appears again.

Signature labels on a manifest entry: ``<id>`` is member ``id``'s key of epoch N (or
of N+1 for a joining member); ``<id>/next`` is the new key of a member whose key
changes in N+1.

Every other entry at index i is checked against the manifest *in force at i*: the
last manifest with an index below i (else genesis).  Its signers must be members of
that epoch with a key (a revoked key, ``sm2_public_key = null``, signs nothing).  So a
removed member's later signatures are refused, and a rotated key's old signatures
still verify for the entries before the rotation.  A checkpoint of size s is judged by
the manifest in force at s (entries 0..s-1 applied): its cosigners must be members of
that epoch, and it is final with ``witness_k`` of them.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import rfc8785

from ledger_anchor.errors import EntryError, SignatureError
from ledger_anchor.sm2 import PublicKey, check_public_key
from ledger_anchor.sm3 import sm3

MANIFEST_KIND = "membership_manifest"
NEXT_KEY_SUFFIX = "/next"
MEMBER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ROLE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ManifestError(EntryError):
    """A membership manifest is malformed, or does not follow from the one before it."""


@dataclass(frozen=True)
class ManifestMember:
    id: str
    name: str
    sm2_public_key: bytes | None  # 64 bytes x||y; None once revoked (signs nothing)
    roles: tuple[str, ...] = ("member",)
    tls_cert_sha256: str = ""  # hex SHA-256 of the DER TLS certificate; "" = not pinned

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name,
                "sm2_public_key": self.sm2_public_key.hex() if self.sm2_public_key is not None else None,
                "roles": list(self.roles), "tls_cert_sha256": self.tls_cert_sha256}


@dataclass(frozen=True)
class Manifest:
    """One epoch of the consortium's membership (see the module docstring)."""

    epoch: int
    origin: str
    log_public_key: bytes
    members: tuple[ManifestMember, ...]
    witness_k: int
    threshold: int
    previous_sm3: str = ""
    proposal_id: str = ""
    revoked_keys: tuple[str, ...] = ()
    index: int | None = None  # ledger index of the manifest entry; None for genesis

    # -- the canonical form ------------------------------------------------------
    def body(self) -> dict[str, Any]:
        return {"kind": MANIFEST_KIND, "epoch": self.epoch, "origin": self.origin,
                "log_public_key": self.log_public_key.hex(),
                "members": [member.to_json() for member in self.members],
                "witness_policy": {"k": self.witness_k}, "threshold": self.threshold,
                "previous_sm3": self.previous_sm3, "proposal_id": self.proposal_id,
                "revoked_keys": list(self.revoked_keys)}

    def sm3(self) -> str:
        return sm3(rfc8785.dumps(self.body())).hex()

    # -- lookups --------------------------------------------------------------------
    def member(self, member_id: str) -> ManifestMember | None:
        for member in self.members:
            if member.id == member_id:
                return member
        return None

    @property
    def member_ids(self) -> tuple[str, ...]:
        return tuple(member.id for member in self.members)

    def signing_keys(self) -> dict[str, bytes]:
        """{member id: key} of the members that may sign in this epoch."""
        return {m.id: m.sm2_public_key for m in self.members if m.sm2_public_key is not None}

    def key_of(self, member_id: str, *, what: str = "signer") -> bytes:
        member = self.member(member_id)
        if member is None:
            raise EntryError(f"unknown {what} {member_id!r}: not a member in epoch {self.epoch} "
                             f"(members: {', '.join(self.member_ids)})")
        if member.sm2_public_key is None:
            raise EntryError(f"{what} {member_id!r}: its key is revoked in epoch {self.epoch}; "
                             "it signs nothing until a key rotation")
        return member.sm2_public_key

    def with_roles(self, role: str) -> tuple[str, ...]:
        return tuple(m.id for m in self.members if role in m.roles)

    # -- parsing ------------------------------------------------------------------
    @classmethod
    def from_body(cls, body: Mapping[str, Any], index: int | None = None) -> Manifest:
        """Validate a manifest body's shape (not yet its place in the chain)."""
        where = f"membership manifest at entry {index}" if index is not None else "membership manifest"

        def need(key: str, kind: type | tuple[type, ...]) -> Any:
            value = body.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ManifestError(f"{where}: field {key!r}: expected {getattr(kind, '__name__', kind)}, "
                                    f"found {value!r}")
            return value

        expected = {"kind", "epoch", "origin", "log_public_key", "members", "witness_policy", "threshold",
                    "previous_sm3", "proposal_id", "revoked_keys"}
        if set(body) != expected:
            raise ManifestError(f"{where}: expected exactly the fields {sorted(expected)}, "
                                f"found {sorted(body)}")
        epoch = need("epoch", int)
        if epoch < 0:
            raise ManifestError(f"{where}: epoch: expected >= 0, found {epoch}")
        origin = need("origin", str)
        log_key = _key(need("log_public_key", str), f"{where}: log_public_key")
        members: list[ManifestMember] = []
        seen_keys: set[bytes] = set()
        for position, item in enumerate(need("members", list)):
            path = f"{where}: members[{position}]"
            if not isinstance(item, Mapping) or set(item) != {"id", "name", "sm2_public_key", "roles",
                                                              "tls_cert_sha256"}:
                raise ManifestError(f"{path}: expected the fields id, name, sm2_public_key, roles, "
                                    f"tls_cert_sha256, found {item!r}")
            member_id = item["id"]
            if not isinstance(member_id, str) or not MEMBER_ID.fullmatch(member_id):
                raise ManifestError(f"{path}.id: expected letters, digits, '_', '.', '-', found {member_id!r}")
            if any(m.id == member_id for m in members):
                raise ManifestError(f"{path}.id: member {member_id!r} appears twice")
            key = None if item["sm2_public_key"] is None else _key(item["sm2_public_key"], f"{path}.sm2_public_key")
            if key is not None:
                if key in seen_keys:
                    raise ManifestError(f"{path}.sm2_public_key: two members share one key")
                seen_keys.add(key)
            roles = item["roles"]
            if (not isinstance(roles, list) or not roles or len(set(roles)) != len(roles)
                    or not all(isinstance(r, str) and ROLE.fullmatch(r) for r in roles)):
                raise ManifestError(f"{path}.roles: expected distinct lowercase role names, found {roles!r}")
            fingerprint = item["tls_cert_sha256"]
            if not isinstance(fingerprint, str) or (fingerprint and not _HEX64.fullmatch(fingerprint)):
                raise ManifestError(f"{path}.tls_cert_sha256: expected 64 lowercase hex digits or \"\", "
                                    f"found {fingerprint!r}")
            name = item["name"]
            if not isinstance(name, str):
                raise ManifestError(f"{path}.name: expected a string, found {name!r}")
            members.append(ManifestMember(member_id, name, key, tuple(roles), fingerprint))
        if not members:
            raise ManifestError(f"{where}: expected at least one member")
        signers = sum(1 for m in members if m.sm2_public_key is not None)
        policy = need("witness_policy", dict)
        if set(policy) != {"k"} or not isinstance(policy["k"], int) or isinstance(policy["k"], bool):
            raise ManifestError(f"{where}: witness_policy: expected {{\"k\": integer}}, found {policy!r}")
        witness_k = policy["k"]
        threshold = need("threshold", int)
        for name, value in (("witness_policy.k", witness_k), ("threshold", threshold)):
            if not 1 <= value <= max(signers, 1):
                raise ManifestError(f"{where}: {name}: expected 1..{signers} (the members with a key), "
                                    f"found {value}")
        previous = need("previous_sm3", str)
        if (epoch == 0) != (previous == "") or (previous and not _HEX64.fullmatch(previous)):
            raise ManifestError(f"{where}: previous_sm3: expected \"\" for epoch 0, else 64 lowercase hex "
                                f"digits, found {previous!r}")
        proposal_id = need("proposal_id", str)
        revoked = need("revoked_keys", list)
        for position, text in enumerate(revoked):
            _key(text, f"{where}: revoked_keys[{position}]")
        if len(set(revoked)) != len(revoked):
            raise ManifestError(f"{where}: revoked_keys: a key appears twice")
        for member in members:
            if member.sm2_public_key is not None and member.sm2_public_key.hex() in revoked:
                raise ManifestError(f"{where}: member {member.id!r} holds a revoked key")
        return cls(epoch, origin, log_key, tuple(members), witness_k, threshold, previous, proposal_id,
                   tuple(revoked), index)

    # -- the next epoch -------------------------------------------------------------
    def successor(self, *, proposal_id: str, members: Sequence[ManifestMember] | None = None,
                  witness_k: int | None = None, threshold: int | None = None,
                  revoke: Sequence[bytes] = ()) -> Manifest:
        """Manifest N+1 with the given changes (validated by :meth:`check_successor`)."""
        revoked = list(self.revoked_keys) + [key.hex() for key in revoke if key.hex() not in self.revoked_keys]
        return replace(self, epoch=self.epoch + 1, members=tuple(members if members is not None else self.members),
                       witness_k=witness_k if witness_k is not None else self.witness_k,
                       threshold=threshold if threshold is not None else self.threshold,
                       previous_sm3=self.sm3(), proposal_id=proposal_id, revoked_keys=tuple(revoked), index=None)

    def successor_signers(self, following: Manifest) -> dict[str, bytes]:
        """{signature label: key} of every key that may sign ``following`` (see module docstring)."""
        labels: dict[str, bytes] = dict(self.signing_keys())
        for member in following.members:
            key = member.sm2_public_key
            if key is None:
                continue
            old = self.member(member.id)
            if old is None:
                labels[member.id] = key
            elif old.sm2_public_key != key:
                labels[member.id + NEXT_KEY_SUFFIX] = key
        return labels

    def check_successor(self, following: Manifest, signers: Sequence[str]) -> None:
        """Raise :class:`ManifestError` unless ``following`` may succeed this manifest when
        signed (with verified signatures) by the labels ``signers``."""
        where = f"membership manifest epoch {following.epoch}"
        if following.index is not None:
            where += f" (entry {following.index})"
        if following.epoch != self.epoch + 1:
            raise ManifestError(f"{where}: expected epoch {self.epoch + 1}, found {following.epoch}")
        if following.previous_sm3 != self.sm3():
            raise ManifestError(f"{where}: previous_sm3: expected {self.sm3()} (epoch {self.epoch}), "
                                f"found {following.previous_sm3}")
        if following.origin != self.origin or following.log_public_key != self.log_public_key:
            raise ManifestError(f"{where}: origin and log key must stay those of the genesis manifest")
        missing = [key for key in self.revoked_keys if key not in following.revoked_keys]
        if missing:
            raise ManifestError(f"{where}: revoked keys must stay revoked, found {len(missing)} dropped")
        labels = self.successor_signers(following)
        unknown = [label for label in signers if label not in labels]
        if unknown:
            raise ManifestError(f"{where}: signature by {', '.join(map(repr, unknown))}: expected labels "
                                f"of epoch {self.epoch} or new keys of epoch {following.epoch} "
                                f"({', '.join(sorted(labels))})")
        signed_keys = {labels[label] for label in signers}
        old_keys = set(self.signing_keys().values())
        new_keys = set(following.signing_keys().values())
        old_count, new_count = len(signed_keys & old_keys), len(signed_keys & new_keys)
        if old_count < self.threshold:
            raise ManifestError(f"{where}: expected signatures by at least {self.threshold} distinct keys of "
                                f"epoch {self.epoch}, found {old_count}")
        if new_count < following.threshold:
            raise ManifestError(f"{where}: expected signatures by at least {following.threshold} distinct keys "
                                f"of epoch {following.epoch}, found {new_count}")
        unsigned_new = sorted(label for label, key in labels.items()
                              if key in new_keys - old_keys and key not in signed_keys)
        if unsigned_new:
            raise ManifestError(f"{where}: every new key must sign it; missing {', '.join(unsigned_new)}")


def _key(text: Any, where: str) -> bytes:
    if not isinstance(text, str) or len(text) != 128 or text != text.lower():
        raise ManifestError(f"{where}: expected 128 lowercase hex digits of an SM2 public key, found {text!r}")
    try:
        raw = bytes.fromhex(text)
        check_public_key(raw)
    except ValueError:
        raise ManifestError(f"{where}: expected hex digits, found {text[:20]!r}...") from None
    except SignatureError as exc:  # not a point of the curve
        raise ManifestError(f"{where}: {exc}") from None
    return raw


@dataclass
class Membership:
    """The manifests of a log in index order, replayed from its manifest entries."""

    genesis: Manifest
    manifests: list[Manifest] = field(default_factory=list)
    _positions: list[int] = field(default_factory=list)  # manifest entry index of manifests[1:]
    _keys: dict[bytes, PublicKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.manifests:
            self.manifests = [self.genesis]

    def copy(self) -> Membership:
        return Membership(self.genesis, list(self.manifests), list(self._positions), self._keys)

    @property
    def current(self) -> Manifest:
        return self.manifests[-1]

    def at(self, index: int) -> Manifest:
        """The manifest in force for the entry at ``index`` (equally: for a checkpoint of
        size ``index``): the last manifest entry below it, else genesis."""
        return self.manifests[bisect.bisect_left(self._positions, index)]

    def public_key_cache(self) -> dict[bytes, PublicKey]:
        return self._keys

    def public_key(self, raw: bytes) -> PublicKey:
        """One PublicKey object per key (backend objects are cached inside)."""
        key = self._keys.get(raw)
        if key is None:
            backend = None
            if self._keys:
                backend = next(iter(self._keys.values())).backend
            key = self._keys[raw] = PublicKey(raw, backend)
        return key

    def signers_of(self, index: int, kind: str, body: Mapping[str, Any],
                   signers: Sequence[str]) -> dict[str, bytes]:
        """{signer: raw key} for the signatures of the entry at ``index``; raises
        :class:`EntryError` for a signer that may not sign it."""
        manifest = self.at(index)
        if kind == MANIFEST_KIND:
            following = Manifest.from_body(body, index)
            labels = manifest.successor_signers(following)
            result = {}
            for signer in signers:
                if signer not in labels:
                    raise ManifestError(f"membership manifest epoch {following.epoch}: signature by "
                                        f"{signer!r}: expected one of {', '.join(sorted(labels))}")
                result[signer] = labels[signer]
            return result
        return {signer: manifest.key_of(signer) for signer in signers}

    def apply(self, index: int, kind: str, body: Mapping[str, Any], signers: Sequence[str]) -> Manifest | None:
        """Take the entry at ``index`` into account (its signatures already verified);
        return the new manifest if it was one."""
        if kind != MANIFEST_KIND:
            return None
        if self._positions and index <= self._positions[-1]:
            raise ManifestError(f"membership manifest at entry {index}: replayed out of order")
        following = Manifest.from_body(body, index)
        self.at(index).check_successor(following, signers)
        self.manifests.append(following)
        self._positions.append(index)
        return following


def genesis_manifest(*, origin: str, log_public_key: bytes, members: Sequence[ManifestMember],
                     witness_k: int, threshold: int) -> Manifest:
    manifest = Manifest(0, origin, log_public_key, tuple(members), witness_k, threshold)
    return Manifest.from_body(manifest.body())  # validated like any other

"""The witness step: a member cosigns a checkpoint only after checking it.

Before cosigning checkpoint C, member M's witness

1. verifies the log's signature on C;
2. compares C with the last checkpoint P that M cosigned (its *state*):
   same size and a different root is a fork; a smaller size is stale (refused); a larger
   size needs a consistency proof from P to C, which must verify;
3. only then signs C (tlog-cosignature v1 message, SM2; see :mod:`ledger_anchor.note`)
   and remembers C as its new state.

Fork evidence (two log-signed checkpoints that cannot both be honest) is raised as
:class:`~ledger_anchor.errors.ForkError` carrying both notes; the caller stores it
with the log and never cosigns.

The state is a small JSON file owned by the member (written atomically, mode 0600).
Without one, the caller falls back to the member's latest cosignature recorded by the
log itself, which protects against forks but not against a log that hides history.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger_anchor import merkle
from ledger_anchor.errors import ForkError, NoteError, ProofError
from ledger_anchor.note import Checkpoint, Cosignature, Note, cosign_text, verify_checkpoint, witness_name
from ledger_anchor.sm2 import PrivateKey, PublicKey


@dataclass(frozen=True)
class WitnessState:
    origin: str
    size: int
    root: bytes
    note: str  # the log-signed checkpoint the member last cosigned

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> WitnessState | None:
        source = Path(path)
        if not source.exists():
            return None
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
            checkpoint = Checkpoint.parse_body(Note.parse(data["note"]).text)
        except (OSError, ValueError, KeyError, TypeError, NoteError) as exc:
            raise NoteError(f"{source}: witness state unreadable: {exc}") from None
        return cls(checkpoint.origin, checkpoint.size, checkpoint.root, data["note"])

    def save(self, path: str | os.PathLike[str]) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, json.dumps({"origin": self.origin, "size": self.size, "note": self.note},
                                    indent=1).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)


def cosign(*, origin: str, log_key: PublicKey, member_id: str, member_key: PrivateKey, checkpoint_note: str,
           previous: WitnessState | None, consistency_proof: Callable[[int, int], Sequence[bytes]],
           timestamp: int | None = None) -> Cosignature:
    """Check ``checkpoint_note`` against ``previous`` and cosign it (see module docstring)."""
    verified = verify_checkpoint(checkpoint_note, origin=origin, log_key=log_key, members={})
    checkpoint = verified.checkpoint
    log_only = Note(verified.note.text, tuple(s for s in verified.note.signatures if s.name == origin)).format()
    if previous is not None:
        if previous.origin != origin:
            raise NoteError(f"witness state is for log {previous.origin!r}, not {origin!r}")
        if checkpoint.size == previous.size and checkpoint.root != previous.root:
            raise ForkError(f"fork: two checkpoints of size {checkpoint.size} with different roots; "
                            f"member {member_id} refuses to cosign", first=previous.note, second=log_only)
        if checkpoint.size < previous.size:
            # Stale (an old checkpoint served as the latest), not by itself proof of a fork.
            raise NoteError(f"stale checkpoint: size {checkpoint.size} is smaller than size {previous.size} "
                            f"already cosigned by member {member_id}; refusing to cosign")
        if checkpoint.size > previous.size and previous.size > 0:
            proof = consistency_proof(previous.size, checkpoint.size)
            try:
                merkle.verify_consistency(merkle.SM3_HASHER, previous.size, checkpoint.size, proof,
                                          previous.root, checkpoint.root)
            except ProofError as exc:
                raise ForkError(f"inconsistent checkpoints: size {previous.size} -> {checkpoint.size}: {exc}; "
                                f"member {member_id} refuses to cosign", first=previous.note, second=log_only) from None
    when = int(time.time()) if timestamp is None else timestamp
    name = witness_name(origin, member_id)
    signature = cosign_text(verified.note.text, name, member_key, when)
    return Cosignature(member_id, checkpoint.size, checkpoint.root, when, signature.line())


def state_after(cosignature: Cosignature, checkpoint_note: str, origin: str) -> WitnessState:
    note = Note.parse(checkpoint_note)
    log_only = Note(note.text, tuple(s for s in note.signatures if s.name == origin)).format()
    return WitnessState(origin, cosignature.size, cosignature.root, log_only)

"""The secrets A and B share in a job, derived from their two partition shares.

Each operator's share is HMAC-SM3 under its own SM2 private key of the job id
(:func:`engine.partition.partition_share`); the two shares are exchanged at the
``partition`` step, which only A and B take part in (H never sees them).  From
``K = SM3("settlechain/job-secret/v1" ‖ job id ‖ share_A ‖ share_B)``, by domain-separated
SM3:

- the bucket key (engine.partition), the same on every run of the job;
- the pair-id key (engine.matching.elements.pair_ids), likewise;
- the salt of the statement's commitment on the ledger (ledger_anchor.commitment), so a
  recovery run rebuilds the same commitment;
- the PSI session ids of this run: SM3 of K, the session nonce (fresh per run), the
  bucket, the pass and the attempt.  H knows the nonce but not K, so H cannot name (let
  alone join) a PSI session; a replayed session id of an earlier run is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import JobError
from engine.partition import KEY_BYTES, SHARE_BYTES, Partition
from ledger_anchor.sm3 import sm3

_LABEL = b"settlechain/job-secret/v1\n"


@dataclass(frozen=True)
class JobSecrets:
    job_id: str
    secret: bytes

    @classmethod
    def from_shares(cls, job_id: str, share_a: bytes, share_b: bytes) -> JobSecrets:
        for name, share in (("A", share_a), ("B", share_b)):
            if len(share) != SHARE_BYTES:
                raise JobError(f"{name}'s partition share has {len(share)} bytes, "
                               f"expected {SHARE_BYTES}")
        return cls(job_id=job_id,
                   secret=sm3(_LABEL + job_id.encode() + b"\n" + share_a + share_b))

    def _derive(self, label: str, data: bytes = b"") -> bytes:
        return sm3(b"settlechain/job-derive/v1\n" + label.encode() + b"\n" + self.secret + data)

    def partition(self, n_buckets: int) -> Partition:
        return Partition(key=self._derive("partition")[:KEY_BYTES], n_buckets=n_buckets)

    @property
    def pair_key(self) -> bytes:
        return self._derive("pair-id")

    @property
    def statement_salt(self) -> bytes:
        return self._derive("statement-salt")

    def psi_session_id(self, nonce: bytes, bucket: int, pass_name: str, attempt: int) -> bytes:
        return self._derive("psi-session", nonce + f"\n{bucket}\n{pass_name}\n{attempt}".encode())[:16]

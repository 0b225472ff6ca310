"""The worker manifest: which worker of A and which of B take which range of buckets.

Built by A and B from the worker offers they exchanged at the job session's ``workers``
step, and signed by both (SM2, like every document of the job) at the ``manifest`` step.
Every worker verifies both signatures before it serves or connects, and refuses any
bucket outside its range and any peer the manifest does not name (docs/scale-out.md)::

    {"format": "settlechain/worker-manifest/v1", "job_id": "...",
     "session_nonce": "<hex>",          # this run of the job (a manifest does not replay)
     "buckets": 16, "partition": "<fingerprint>",
     "members": {"A": "CMCC", "B": "CUCC"},
     "ranges": [{"index": 0, "first": 0, "end": 8,
                 "A": {"endpoint": "10.1.0.5:7600", "cert_sha256": "<hex>", "node": "..."},
                 "B": {"endpoint": "", "cert_sha256": "<hex>", "node": "..."}}, ...]}

Its signing bytes are the RFC 8785 canonical JSON of that document.  The number of
ranges is the smaller of the two offers (and at most the number of buckets); range i is
buckets ``[floor(i·n/k), floor((i+1)·n/k))``, taken by worker i of each side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import rfc8785

from engine.names import OPERATOR_ROLES
from engine.scale.errors import ManifestError
from ledger_anchor import sm2
from ledger_anchor.sm3 import sm3

FORMAT = "settlechain/worker-manifest/v1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ENDPOINT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$")


@dataclass(frozen=True)
class WorkerSlot:
    """One worker as its operator offered it."""

    endpoint: str          # host:port where A's worker listens; "" for B's (it connects)
    cert_sha256: str       # hex SHA-256 of its TLS certificate (DER)
    node: str = ""         # where it runs (for the logs): a Ray node id, a host name

    def to_json(self) -> dict[str, str]:
        return {"endpoint": self.endpoint, "cert_sha256": self.cert_sha256, "node": self.node}


@dataclass(frozen=True)
class BucketRange:
    index: int
    first: int
    end: int
    workers: dict[str, WorkerSlot]   # "A" and "B"

    def __contains__(self, bucket: object) -> bool:
        return isinstance(bucket, int) and self.first <= bucket < self.end

    def buckets(self) -> range:
        return range(self.first, self.end)

    def describe(self) -> str:
        return f"range {self.index} (buckets {self.first}..{self.end - 1})"


def split_ranges(n_buckets: int, k: int) -> list[tuple[int, int]]:
    """``k`` contiguous ranges covering buckets ``0..n_buckets-1``, sizes differing by at
    most one."""
    if not 1 <= k <= n_buckets:
        raise ManifestError(f"cannot split {n_buckets} buckets into {k} ranges")
    return [(i * n_buckets // k, (i + 1) * n_buckets // k) for i in range(k)]


@dataclass(frozen=True)
class Manifest:
    job_id: str
    session_nonce: str
    buckets: int
    partition: str
    members: dict[str, str]
    ranges: tuple[BucketRange, ...]

    # -- the document ---------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        return {"format": FORMAT, "job_id": self.job_id, "session_nonce": self.session_nonce,
                "buckets": self.buckets, "partition": self.partition,
                "members": dict(self.members),
                "ranges": [{"index": r.index, "first": r.first, "end": r.end,
                            **{role: r.workers[role].to_json() for role in OPERATOR_ROLES}}
                           for r in self.ranges]}

    def signing_bytes(self) -> bytes:
        return rfc8785.dumps(self.document())

    def sm3(self) -> bytes:
        return sm3(b"settlechain/worker-manifest/v1\n" + self.signing_bytes())

    @classmethod
    def from_document(cls, doc: Any) -> Manifest:
        """Parse and check a manifest document; :class:`ManifestError` names the field."""
        def need(mapping: Any, key: str, kind: type, where: str) -> Any:
            if not isinstance(mapping, dict) or key not in mapping:
                raise ManifestError(f"worker manifest: {where}{key} is missing")
            value = mapping[key]
            if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
                raise ManifestError(f"worker manifest: {where}{key} should be a "
                                    f"{kind.__name__}, found {value!r}")
            return value

        if need(doc, "format", str, "") != FORMAT:
            raise ManifestError(f"worker manifest: format {doc.get('format')!r}, "
                                f"expected {FORMAT!r}")
        members = need(doc, "members", dict, "")
        if sorted(members) != sorted(OPERATOR_ROLES) or not all(
                isinstance(v, str) and v for v in members.values()):
            raise ManifestError(f"worker manifest: members should name A and B, found "
                                f"{members!r}")
        n = need(doc, "buckets", int, "")
        ranges = []
        expected_first = 0
        for position, raw in enumerate(need(doc, "ranges", list, "")):
            where = f"ranges[{position}]."
            index, first, end = (need(raw, k, int, where) for k in ("index", "first", "end"))
            if index != position or first != expected_first or not first < end <= n:
                raise ManifestError(f"worker manifest: {where[:-1]} is [{first}, {end}) with "
                                    f"index {index}; ranges must cover buckets 0..{n - 1} in "
                                    "order, each non-empty")
            expected_first = end
            workers = {}
            for role in OPERATOR_ROLES:
                slot = need(raw, role, dict, where)
                endpoint = need(slot, "endpoint", str, f"{where}{role}.")
                cert = need(slot, "cert_sha256", str, f"{where}{role}.")
                if not _HEX64.match(cert):
                    raise ManifestError(f"worker manifest: {where}{role}.cert_sha256 should "
                                        f"be 64 hex characters, found {cert!r}")
                if role == "A" and not _ENDPOINT.match(endpoint):
                    raise ManifestError(f"worker manifest: {where}A.endpoint should be "
                                        f"host:port, found {endpoint!r}")
                workers[role] = WorkerSlot(endpoint, cert, str(slot.get("node", "")))
            ranges.append(BucketRange(index, first, end, workers))
        if expected_first != n or not ranges:
            raise ManifestError(f"worker manifest: the ranges cover buckets 0..{expected_first - 1}"
                                f" of {n}")
        return cls(job_id=need(doc, "job_id", str, ""),
                   session_nonce=need(doc, "session_nonce", str, ""), buckets=n,
                   partition=need(doc, "partition", str, ""), members=dict(members),
                   ranges=tuple(ranges))

    # -- what a worker checks --------------------------------------------------------

    def range(self, index: int) -> BucketRange:
        if not 0 <= index < len(self.ranges):
            raise ManifestError(f"the worker manifest has no range {index} (it has "
                                f"{len(self.ranges)})")
        return self.ranges[index]

    def check_run(self, *, job_id: str, session_nonce: bytes, partition: str,
                  members: dict[str, str]) -> None:
        """The manifest is this job's, this run's and this partition's."""
        for what, got, want in (("job id", self.job_id, job_id),
                                ("session nonce", self.session_nonce, session_nonce.hex()),
                                ("partition", self.partition, partition),
                                ("members", self.members, {r: members[r] for r in OPERATOR_ROLES})):
            if got != want:
                raise ManifestError(f"the worker manifest is for {what} {got!r}, this run has "
                                    f"{want!r}")


def build_manifest(*, job_id: str, session_nonce: bytes, n_buckets: int, partition: str,
                   members: dict[str, str], offers: dict[str, list[WorkerSlot]]) -> Manifest | None:
    """The manifest both operators derive from the two offers; None when either offered no
    worker (then the buckets run in the parties' own processes)."""
    k = min(len(offers["A"]), len(offers["B"]), n_buckets)
    if k == 0:
        return None
    ranges = tuple(BucketRange(i, first, end, {r: offers[r][i] for r in OPERATOR_ROLES})
                   for i, (first, end) in enumerate(split_ranges(n_buckets, k)))
    return Manifest(job_id=job_id, session_nonce=session_nonce.hex(), buckets=n_buckets,
                    partition=partition, members={r: members[r] for r in OPERATOR_ROLES},
                    ranges=ranges)


@dataclass(frozen=True)
class SignedManifest:
    """The manifest with A's and B's SM2 signatures over its signing bytes."""

    manifest: Manifest
    signatures: dict[str, bytes]

    def verify(self, public_keys: dict[str, bytes]) -> None:
        """Both signatures verify under the keys of the members the manifest names (from
        the consortium file); else :class:`ManifestError`."""
        data = self.manifest.signing_bytes()
        for role in OPERATOR_ROLES:
            member = self.manifest.members[role]
            signature = self.signatures.get(role)
            if signature is None:
                raise ManifestError(f"the worker manifest has no signature of {role} ({member})")
            try:
                sm2.verify(public_keys[member], data, signature)
            except KeyError:
                raise ManifestError(f"the worker manifest names {member!r} as {role}, who is "
                                    "not a member of the consortium") from None
            except Exception as exc:  # noqa: BLE001 - any failure is a bad signature here
                raise ManifestError(f"{role}'s ({member}) signature on the worker manifest "
                                    f"does not verify: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return {"manifest": self.manifest.document(),
                "signatures": {r: s.hex() for r, s in self.signatures.items()}}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SignedManifest:
        try:
            signatures = {r: bytes.fromhex(s) for r, s in doc["signatures"].items()}
        except (KeyError, AttributeError, ValueError, TypeError) as exc:
            raise ManifestError(f"worker manifest signatures unreadable: {exc}") from None
        return cls(Manifest.from_document(doc.get("manifest")), signatures)


__all__ = ["BucketRange", "FORMAT", "Manifest", "SignedManifest", "WorkerSlot",
           "build_manifest", "split_ranges"]

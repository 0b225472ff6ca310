"""The worker manifest: ranges, the document both sign, and what a worker refuses."""

from __future__ import annotations

import copy

import pytest

from engine.scale.errors import ManifestError
from engine.scale.manifest import (
    Manifest, SignedManifest, WorkerSlot, build_manifest, split_ranges,
)
from ledger_anchor import sm2


def _slot(i: int, role: str) -> WorkerSlot:
    return WorkerSlot(f"127.0.0.{i + 1}:{7600 + i}" if role == "A" else "",
                      f"{i:02x}" * 32 if role == "A" else f"{i + 100:02x}" * 32, f"node{i}")


def _manifest(n_buckets=10, a=3, b=4) -> Manifest:
    manifest = build_manifest(job_id="job-1", session_nonce=b"\x01" * 16, n_buckets=n_buckets,
                              partition="fp", members={"A": "CMCC", "B": "CUCC"},
                              offers={"A": [_slot(i, "A") for i in range(a)],
                                      "B": [_slot(i, "B") for i in range(b)]})
    assert manifest is not None
    return manifest


@pytest.mark.parametrize("n, k", [(1, 1), (10, 3), (7, 7), (65536, 5)])
def test_ranges_cover_every_bucket_once(n, k):
    ranges = split_ranges(n, k)
    covered = [b for first, end in ranges for b in range(first, end)]
    assert covered == list(range(n))
    sizes = [end - first for first, end in ranges]
    assert max(sizes) - min(sizes) <= 1


def test_pairs_are_the_smaller_offer_and_no_offer_means_no_workers():
    manifest = _manifest(a=3, b=4)
    assert len(manifest.ranges) == 3
    assert [r.workers["A"].endpoint for r in manifest.ranges] == [_slot(i, "A").endpoint
                                                                  for i in range(3)]
    assert len(_manifest(n_buckets=2, a=3, b=4).ranges) == 2  # never more pairs than buckets
    assert build_manifest(job_id="j", session_nonce=b"n", n_buckets=4, partition="p",
                          members={"A": "X", "B": "Y"},
                          offers={"A": [_slot(0, "A")], "B": []}) is None


def test_document_round_trips_and_signing_bytes_are_canonical():
    manifest = _manifest()
    again = Manifest.from_document(copy.deepcopy(manifest.document()))
    assert again == manifest
    assert again.signing_bytes() == manifest.signing_bytes()
    assert manifest.range(1).first == 3 and 5 in manifest.range(1) and 6 not in manifest.range(1)


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d["ranges"][1].__setitem__("first", 4), "must cover"),
    (lambda d: d["ranges"].pop(), "cover buckets"),
    (lambda d: d["ranges"][0]["A"].__setitem__("endpoint", "no-port"), "host:port"),
    (lambda d: d["ranges"][0]["B"].__setitem__("cert_sha256", "zz"), "64 hex"),
    (lambda d: d.__setitem__("format", "other/v0"), "format"),
    (lambda d: d["members"].pop("B"), "members"),
    (lambda d: d.__setitem__("buckets", "10"), "buckets should be a int"),
])
def test_malformed_documents_are_refused_naming_the_field(mutate, fragment):
    doc = copy.deepcopy(_manifest().document())
    mutate(doc)
    with pytest.raises(ManifestError, match=fragment):
        Manifest.from_document(doc)


def test_both_signatures_are_checked_and_bound_to_the_content():
    manifest = _manifest()
    keys = {m: sm2.generate_keypair() for m in ("CMCC", "CUCC", "CTCC")}
    public = {m: k[1] for m, k in keys.items()}
    data = manifest.signing_bytes()
    signed = SignedManifest(manifest, {"A": sm2.sign(keys["CMCC"][0], data),
                                       "B": sm2.sign(keys["CUCC"][0], data)})
    signed.verify(public)
    SignedManifest.from_json(signed.to_json()).verify(public)
    # B's signature made by the helper's key
    with pytest.raises(ManifestError, match="B's .CUCC. signature"):
        SignedManifest(manifest, {"A": signed.signatures["A"],
                                  "B": sm2.sign(keys["CTCC"][0], data)}).verify(public)
    # one signature missing
    with pytest.raises(ManifestError, match="no signature of B"):
        SignedManifest(manifest, {"A": signed.signatures["A"]}).verify(public)
    # a range moved after both signed: neither signature holds
    doc = signed.to_json()
    doc["manifest"]["ranges"][0]["end"] = 4
    doc["manifest"]["ranges"][1]["first"] = 4
    with pytest.raises(ManifestError, match="does not verify"):
        SignedManifest.from_json(doc).verify(public)


def test_a_manifest_of_another_run_is_refused():
    manifest = _manifest()
    members = {"A": "CMCC", "B": "CUCC"}
    manifest.check_run(job_id="job-1", session_nonce=b"\x01" * 16, partition="fp",
                       members=members)
    for kwargs, what in (({"job_id": "job-2"}, "job id"),
                         ({"session_nonce": b"\x02" * 16}, "session nonce"),
                         ({"partition": "other"}, "partition"),
                         ({"members": {"A": "CUCC", "B": "CMCC"}}, "members")):
        args = {"job_id": "job-1", "session_nonce": b"\x01" * 16, "partition": "fp",
                "members": members} | kwargs
        with pytest.raises(ManifestError, match=what):
            manifest.check_run(**args)

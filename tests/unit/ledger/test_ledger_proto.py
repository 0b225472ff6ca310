"""Every ledger message round-trips through serialize/parse (the generated code's
freshness: tests/unit/test_protos.py, for every .proto)."""


from ledger_anchor import ledger_pb2

def test_messages_round_trip() -> None:
    messages = [
        ledger_pb2.AppendRequest(entries=[ledger_pb2.SignedEntry(
            entry_json=b'{"kind":"invoice"}', signatures=[ledger_pb2.Signature(signer="A", signature=b"\x01" * 64)])]),
        ledger_pb2.AppendResponse(receipts=[ledger_pb2.AppendReceipt(index=7, leaf_hash=b"\x02" * 32,
                                                                     checkpoint="o\n8\nAA==\n\n")]),
        ledger_pb2.GetEntriesRequest(start=3, end=9),
        ledger_pb2.GetEntriesResponse(start=3, leaf_data=[b"{}", b"[]"], tree_size=10),
        ledger_pb2.GetCheckpointRequest(size=5, has_size=True),
        ledger_pb2.CheckpointResponse(checkpoint="x", tree_size=5, final_size=4, has_final=True),
        ledger_pb2.InclusionProofRequest(index=1, tree_size=2),
        ledger_pb2.ConsistencyProofRequest(first_size=1, second_size=2),
        ledger_pb2.ProofResponse(hashes=[b"\x03" * 32]),
        ledger_pb2.AddCosignatureRequest(member_id="B", tree_size=4, signature_line="\u2014 n AAAA\n"),
        ledger_pb2.ReportForkRequest(reason="r", first_checkpoint="a", second_checkpoint="b"),
        ledger_pb2.GetGovernanceEntriesRequest(start=4),
        ledger_pb2.GetGovernanceEntriesResponse(indices=[4, 9], leaf_data=[b"{}", b"[]"], complete=True),
    ]
    for message in messages:
        parsed = type(message).FromString(message.SerializeToString())
        assert parsed == message

"""A writer process for the durability tests: appends signed entries in small random
batches forever (until killed) and records each committed receipt in an ack file."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path


def write_forever(config_path: str, ack_path: str, writer: str, limit: int | None = None) -> None:
    from ledger_anchor import open_ledger, sm2
    from ledger_anchor.config import load_config
    from ledger_anchor.entries import canonical_entry_bytes

    config = load_config(config_path)
    key = sm2.load_private_key(config.member_key_path("A"))
    fd = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    rng = random.Random(os.getpid())
    counter = 0
    with open_ledger(config) as ledger:
        while limit is None or counter < limit:
            batch = []
            for _ in range(rng.randint(1, 3)):
                entry = {"kind": "invoice", "writer": writer, "n": counter, "pid": os.getpid()}
                batch.append((entry, {"A": sm2.sign(key, canonical_entry_bytes(entry))}))
                counter += 1
            for receipt in ledger.append_many(batch):
                os.write(fd, f"{receipt.index} {receipt.leaf_hash.hex()}\n".encode())


if __name__ == "__main__":  # pragma: no cover - manual use
    write_forever(sys.argv[1], sys.argv[2], sys.argv[3])
    Path(sys.argv[2]).touch()

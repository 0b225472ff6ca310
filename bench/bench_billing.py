"""Billing benchmarks: sealing and opening documents (SM2 encryption against gmalg and gmssl
in the same run), importing a 10^4-transaction camt.053 (parse + ISO 20022 XSD validation +
matching; plain lxml parsing as the floor), and a member's replay over 1,000 invoices.

Run (under the shared-machine lock; the exact command of bench/RESULTS-billing.md)::

    flock /tmp/settlechain-bench.lock .venv/bin/python -m pytest bench/bench_billing.py \\
        -o python_files='bench_*.py' --benchmark-enable -s --benchmark-columns=min,median,max,rounds
"""

from __future__ import annotations

import datetime as dt
import io
import secrets
import sys
from pathlib import Path

import pytest
from gmalg import ellipticcurve as gmalg_ec
from gmalg import sm2 as gmalg_sm2
from gmalg.sm3 import SM3 as GmalgSM3
from gmssl import sm2 as gmssl_sm2
from lxml import etree

from billing.bank import parse_camt
from billing.documents import document_bytes
from billing.invoices import finalize
from billing.ledgerio import Outgoing, append_documents
from billing.matching import match_transactions
from billing.state import BillingState, Item
from data_gen.bank import BankConfig, Receivable, camt053_xml, generate_bank_statement
from ledger_anchor import sm2
from ledger_anchor.sealed import Recipient, open_sealed, seal, sm2_decrypt, sm2_encrypt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.unit.billing.billing_fixtures import ISSUED, Consortium, terms  # noqa: E402

KEYS = {m: sm2.generate_keypair() for m in ("CMCC", "CUCC")}
CONTENT_KEY = secrets.token_bytes(16)


def test_seal_and_open_an_invoice_sized_document(benchmark) -> None:
    document = secrets.token_bytes(1_500)   # an invoice with a dozen lines is about this size
    recipients = [Recipient(m, KEYS[m][1]) for m in KEYS]

    def round_trip() -> None:
        entry = seal("invoice", document, recipients).entry()
        open_sealed(entry, "CUCC", KEYS["CUCC"][0])

    benchmark(round_trip)


def test_sm2_encrypt_ours(benchmark) -> None:
    benchmark(sm2_encrypt, KEYS["CUCC"][1], CONTENT_KEY)


def test_sm2_decrypt_ours(benchmark) -> None:
    wrapped = sm2_encrypt(KEYS["CUCC"][1], CONTENT_KEY)
    benchmark(sm2_decrypt, KEYS["CUCC"][0], wrapped)


def test_sm2_encrypt_peer_gmalg(benchmark) -> None:
    c = sm2.SM2P256V1
    core = gmalg_sm2.SM2Core(gmalg_ec.ECDLP(c.p, c.a, c.b, (c.gx, c.gy), c.n), GmalgSM3())
    public = KEYS["CUCC"][1]
    point = (int.from_bytes(public[:32], "big"), int.from_bytes(public[32:], "big"))
    benchmark(core.encrypt, CONTENT_KEY, point)


def test_sm2_encrypt_peer_gmssl(benchmark) -> None:
    crypt = gmssl_sm2.CryptSM2(private_key=KEYS["CUCC"][0].hex(), public_key="", mode=1)
    crypt.public_key = KEYS["CUCC"][1].hex()
    benchmark(crypt.encrypt, CONTENT_KEY)


N_TRANSACTIONS = 10_000


@pytest.fixture(scope="module")
def camt() -> tuple[bytes, BillingState]:
    receivables = [Receivable(f"CUCC-CMCC-2026-{i:06d}", 10_000 + i, "China Mobile", "6222") for i in
                   range(1, N_TRANSACTIONS + 1)]
    statement = generate_bank_statement(receivables, BankConfig(seed=1, unreferenced_credits=100, ambiguous_credits=100,
                                                                debits=100))
    state = BillingState("CUCC", terms())
    for n, r in enumerate(receivables):
        state.items[r.reference] = Item(r.reference, "invoice", "CUCC", "CMCC", r.amount, ISSUED,
                                        ISSUED + dt.timedelta(days=30), "2026-10", None, n, None)
    return camt053_xml(statement), state


def test_camt053_parse_validate_and_match(benchmark, camt) -> None:
    xml, state = camt

    def run() -> int:
        return len(match_transactions(parse_camt(xml, "bank.xml"), state, "CUCC"))

    outcomes = benchmark(run)
    print(f"\n{outcomes} transactions, {len(xml) / 1e6:.1f} MB of camt.053")


def test_camt053_lxml_parse_only_floor(benchmark, camt) -> None:
    xml, _ = camt
    benchmark(lambda: etree.parse(io.BytesIO(xml)))


N_INVOICES = 1_000


@pytest.fixture(scope="module")
def ledger_with_invoices(tmp_path_factory):
    consortium = Consortium.create(tmp_path_factory.mktemp("billing-bench"))
    path = consortium.settle("bench-job")
    member = consortium.member("CUCC", path)
    draft = member.draft_invoice(path, ISSUED)
    view = member.view()
    batch = 100
    for start in range(0, N_INVOICES, batch):   # distinct numbers of one series; the replay refuses all but
        docs = [Outgoing(finalize(draft, n), ("CUCC", "CMCC"))   # the first (one statement, one invoice),
                for n in range(start + 1, start + batch + 1)]    # which is what it must do, every time
        append_documents(member.ledger, view, "CUCC", member.signing_key, docs)
    print(f"\n{N_INVOICES} sealed invoices, document {len(document_bytes(draft))} bytes")
    yield member
    member.close()


def test_replay_cold(benchmark, ledger_with_invoices) -> None:
    member = ledger_with_invoices

    def cold() -> int:
        member._opened.clear()
        return len(member.state().refused)

    assert benchmark.pedantic(cold, rounds=3, iterations=1) == N_INVOICES - 1


def test_replay_warm(benchmark, ledger_with_invoices) -> None:
    member = ledger_with_invoices
    member.state()
    assert benchmark(lambda: len(member.state().refused)) == N_INVOICES - 1

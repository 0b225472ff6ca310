"""Bank files: camt.053/054 parsed and validated against the ISO 20022 schema, the CSV,
and every malformed input named by file and line/row/column; data_gen's statements valid."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from billing.bank import parse_camt, parse_csv, read_bank_file
from billing.errors import BankFileError
from data_gen.bank import BankConfig, Receivable, bank_csv, camt053_xml, generate_bank_statement

RECEIVABLES = [Receivable(f"CUCC-CMCC-2026-{n:06d}", 100_000 + n * 1_234, "China Mobile", f"62220200000000{n:05d}")
               for n in range(1, 21)]


def _statement(seed: int = 3):
    return generate_bank_statement(RECEIVABLES, BankConfig(seed=seed, account="6222020200000000001",
                                                           account_holder="China Unicom"))


def test_generated_camt053_is_valid_against_the_iso_schema_and_reads_like_the_csv() -> None:
    statement = _statement()
    xml = parse_camt(camt053_xml(statement), "bank.xml")
    csv = parse_csv(bank_csv(statement).encode(), "bank.csv", account="6222020200000000001")
    assert xml.format == "camt.053.001.08" and xml.account == "6222020200000000001"
    strip = lambda t: (t.transaction_id, t.booking_date, t.amount, t.currency, t.credit, t.reversal,  # noqa: E731
                       t.end_to_end_id, t.remittance, t.debtor_name, t.debtor_account, t.booked)
    assert [strip(t) for t in xml.transactions] == [strip(t) for t in csv.transactions]
    assert len(xml.transactions) == len(statement.transactions)


def test_generator_is_deterministic_for_a_seed() -> None:
    assert camt053_xml(_statement(5)) == camt053_xml(_statement(5))
    assert camt053_xml(_statement(5)) != camt053_xml(_statement(6))


def _mutate(xml: bytes, xpath: str, change) -> bytes:  # type: ignore[no-untyped-def]
    root = etree.fromstring(xml)
    ns = {"c": root.nsmap[None]}
    change(root.xpath(xpath, namespaces=ns)[0])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@pytest.mark.parametrize("name,xpath,change,message", [
    ("negative amount", "//c:Ntry/c:Amt", lambda e: setattr(e, "text", "-5.00"), "schema"),
    ("unknown direction", "//c:Ntry/c:CdtDbtInd", lambda e: setattr(e, "text", "CREDIT"), "schema"),
    ("missing account", "//c:Stmt/c:Acct", lambda e: e.getparent().remove(e), "schema"),
    ("bad currency", "//c:Ntry/c:Amt", lambda e: e.set("Ccy", "yuan"), "schema"),
    ("three decimals", "//c:TxDtls/c:Amt", lambda e: setattr(e, "text", "1.005"), "whole fen"),
])
def test_invalid_camt_is_refused_with_its_line(name, xpath, change, message) -> None:
    bad = _mutate(camt053_xml(_statement()), xpath, change)
    with pytest.raises(BankFileError) as error:
        parse_camt(bad, "bad.xml")
    text = error.value.diagnostics()
    assert "bad.xml" in text and "line " in text and message in text, text


def test_camt_with_a_doctype_is_refused() -> None:
    xml = camt053_xml(_statement()).replace(
        b"?>", b'?>\n<!DOCTYPE Document [<!ENTITY x "xx">]>', 1)
    with pytest.raises(BankFileError, match="DOCTYPE"):
        parse_camt(xml, "evil.xml")


def test_other_namespace_and_malformed_xml_are_refused() -> None:
    with pytest.raises(BankFileError, match="not a supported"):
        parse_camt(b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"/>', "p.xml")
    with pytest.raises(BankFileError, match="well-formed") as error:
        parse_camt(b"<Document>\n<oops>\n</Document>", "m.xml")
    assert error.value.row == 3


def test_camt054_notification_is_read() -> None:
    xml = camt053_xml(_statement()).decode()
    xml = (xml.replace("camt.053.001.08", "camt.054.001.08").replace("BkToCstmrStmt", "BkToCstmrDbtCdtNtfctn")
           .replace("<Stmt>", "<Ntfctn>").replace("</Stmt>", "</Ntfctn>"))
    # a notification has no balances
    root = etree.fromstring(xml.encode())
    for bal in root.xpath("//c:Bal", namespaces={"c": root.nsmap[None]}):
        bal.getparent().remove(bal)
    parsed = parse_camt(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), "n.xml")
    assert parsed.format == "camt.054.001.08" and len(parsed.transactions) == len(_statement().transactions)


def test_pending_entries_are_listed_not_booked() -> None:
    bad = _mutate(camt053_xml(_statement()), "//c:Ntry/c:Sts/c:Cd", lambda e: setattr(e, "text", "PDNG"))
    first = parse_camt(bad, "p.xml").transactions[0]
    assert first.booked is False


HEADER = "transaction_id,booking_date,value_date,direction,amount,currency,reversal,end_to_end_id,remittance,debtor_name,debtor_account\n"


@pytest.mark.parametrize("row,column", [
    ("T1,2026-12-01,,CRDT,12.345,CNY,false,,,,\n", "amount"),
    ("T1,2026-12-01,,CRDT,1e3,CNY,false,,,,\n", "amount"),
    ("T1,2026-12-01,,CRDT,-5.00,CNY,false,,,,\n", "amount"),
    ("T1,2026-13-01,,CRDT,5.00,CNY,false,,,,\n", "booking_date"),
    ("T1,2026-12-01,,IN,5.00,CNY,false,,,,\n", "direction"),
    ("T1,2026-12-01,,CRDT,5.00,RMB1,false,,,,\n", "currency"),
    ("T1,2026-12-01,,CRDT,5.00,CNY,yes,,,,\n", "reversal"),
    (",2026-12-01,,CRDT,5.00,CNY,false,,,,\n", "transaction_id"),
])
def test_bad_csv_rows_name_row_and_column(row: str, column: str) -> None:
    with pytest.raises(BankFileError) as error:
        parse_csv((HEADER + "T0,2026-12-01,,CRDT,1.00,CNY,false,,,,\n" + row).encode(), "b.csv")
    assert (error.value.row, error.value.column) == (2, column)
    assert "b.csv, row 2, column" in error.value.diagnostics()


def test_csv_repeated_transaction_and_wrong_header() -> None:
    with pytest.raises(BankFileError, match="repeated"):
        parse_csv((HEADER + "T0,2026-12-01,,CRDT,1.00,CNY,false,,,,\n" * 2).encode(), "b.csv")
    with pytest.raises(BankFileError, match="header"):
        parse_csv(b"id,amount\n1,2\n", "b.csv")


def test_csv_amounts_are_exact_fen(tmp_path) -> None:
    path = tmp_path / "b.csv"
    path.write_text(HEADER + "T0,2026-12-01,2026-12-02,CRDT,1234.5,CNY,false,E2E,,,\n", encoding="utf-8")
    tx = read_bank_file(path).transactions[0]
    assert (tx.amount, tx.value_date) == (123450, dt.date(2026, 12, 2))

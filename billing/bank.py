"""Bank statements: ISO 20022 camt.053 / camt.054 (XML) and the documented CSV, as bank transactions.

*XML.*  A file is parsed with lxml (libxml2) with entity resolution, DTD loading and
network access off, and refused if it declares a DOCTYPE (no entity expansion attacks);
it is then validated against the ISO 20022 schema of its namespace
(``billing/schemas``, see its README for where the XSDs come from):
``urn:iso:std:iso:20022:tech:xsd:camt.053.001.08`` (BankToCustomerStatementV08) or
``…camt.054.001.08`` (BankToCustomerDebitCreditNotificationV08).  A schema violation is
reported with the file, the line and libxml2's message.

Each entry (``Ntry``) with status ``BOOK`` gives one transaction per transaction detail
(``NtryDtls/TxDtls``; the entry itself when it has none):

| field | from |
| --- | --- |
| ``transaction_id`` | ``TxDtls/Refs/AcctSvcrRef``, else ``Ntry/AcctSvcrRef`` (+ ``/k`` for the k-th detail of a batch), else ``<Stmt Id>/<entry number>/<k>`` |
| ``amount`` | ``TxDtls/Amt`` (else ``Ntry/Amt``), in whole fen |
| ``credit`` | ``CdtDbtInd`` = ``CRDT`` |
| ``reversal`` | ``Ntry/RvslInd`` = true |
| ``booking_date`` / ``value_date`` | ``BookgDt`` / ``ValDt`` (``Dt``, or the date of ``DtTm``) |
| ``end_to_end_id`` | ``Refs/EndToEndId`` (``NOTPROVIDED`` is empty) |
| ``remittance`` | every ``RmtInf/Ustrd`` and ``RmtInf/Strd/CdtrRefInf/Ref``, space-separated |
| ``debtor_name`` / ``debtor_account`` | ``RltdPties/Dbtr/Pty/Nm`` / ``RltdPties/DbtrAcct/Id`` (IBAN or Othr/Id) |

Entries with another status (``PDNG``, ``INFO``) are returned with ``booked`` false: listed,
never applied.

*CSV* (UTF-8, header row, comma-separated, ``"`` quoting), one transaction per row::

    transaction_id,booking_date,value_date,direction,amount,currency,reversal,end_to_end_id,remittance,debtor_name,debtor_account

``direction`` is ``CRDT`` or ``DBIT``; ``amount`` a positive amount in yuan with at most
two decimals (``1234.50``); ``reversal`` ``true`` or ``false``; dates ``YYYY-MM-DD``
(``value_date`` may be empty).  Every error names the file, the row (the first data row
is row 1) and the column.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lxml import etree

from billing.errors import BankFileError
from billing.money import parse_amount, parse_xml_amount
from ledger_anchor.sm3 import sm3

SCHEMA_DIR = Path(__file__).with_name("schemas")
NAMESPACES: dict[str, str] = {
    "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08": "camt.053.001.08.xsd",
    "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08": "camt.054.001.08.xsd",
}
CSV_COLUMNS: tuple[str, ...] = ("transaction_id", "booking_date", "value_date", "direction", "amount", "currency",
                                "reversal", "end_to_end_id", "remittance", "debtor_name", "debtor_account")
MAX_FILE_BYTES = 64 * 1024 * 1024
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class BankTransaction:
    transaction_id: str
    booking_date: dt.date
    value_date: dt.date | None
    amount: int
    currency: str
    credit: bool
    reversal: bool
    end_to_end_id: str
    remittance: str
    debtor_name: str
    debtor_account: str
    booked: bool
    location: str          # "line 57" (XML) or "row 3" (CSV): where it is in its file


@dataclass(frozen=True)
class BankFile:
    path: str
    format: str            # camt.053.001.08 | camt.054.001.08 | csv
    sm3: str               # of the file's bytes: recorded in every payment taken from it
    account: str
    transactions: tuple[BankTransaction, ...]


def read_bank_file(path: str | Path, *, account: str = "") -> BankFile:
    """A camt.053/054 XML file or the documented CSV, by content (``<`` first: XML)."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BankFileError(f"cannot read the bank file: {exc.strerror or exc}", file=source) from None
    if len(data) > MAX_FILE_BYTES:
        raise BankFileError("bank file too large", file=source, expected=f"at most {MAX_FILE_BYTES} bytes",
                            found=f"{len(data)} bytes")
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"<":
        return parse_camt(data, source)
    return parse_csv(data, source, account=account)


# ---------------------------------------------------------------------------
# camt.053 / camt.054


@lru_cache(maxsize=4)
def _schema(file_name: str) -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / file_name), parser))


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                           remove_comments=True, remove_pis=True)


def parse_camt(data: bytes, source: str = "<memory>") -> BankFile:
    try:
        tree = etree.parse(io.BytesIO(data), _parser())
    except etree.XMLSyntaxError as exc:
        raise BankFileError(f"not well-formed XML: {exc.msg}", file=source, row=exc.lineno,
                            line_word="line") from None
    if tree.docinfo.doctype:
        raise BankFileError("a bank statement must not declare a DOCTYPE (entity expansion is refused)",
                            file=source, row=1, line_word="line", found=tree.docinfo.doctype[:60])
    root = tree.getroot()
    namespace = etree.QName(root).namespace or ""
    schema_file = NAMESPACES.get(namespace)
    if schema_file is None or etree.QName(root).localname != "Document":
        raise BankFileError("not a supported ISO 20022 bank statement", file=source, row=root.sourceline,
                            line_word="line", expected="a Document in namespace " + " or ".join(NAMESPACES),
                            found=f"{etree.QName(root).localname} in {namespace or 'no namespace'}")
    schema = _schema(schema_file)
    if not schema.validate(tree):
        error = schema.error_log.filter_from_errors()[0]
        raise BankFileError(f"invalid against the ISO 20022 schema {schema_file}: {error.message}", file=source,
                            row=error.line, line_word="line")
    kind = schema_file.removesuffix(".xsd")
    ns = {"c": namespace}
    reports = root.xpath("c:BkToCstmrStmt/c:Stmt | c:BkToCstmrDbtCdtNtfctn/c:Ntfctn", namespaces=ns)
    transactions: list[BankTransaction] = []
    accounts: set[str] = set()
    for report in reports:
        report_id = _text(report, "c:Id", ns)
        account = _account(report.find("c:Acct", ns), ns)
        accounts.add(account)
        for number, entry in enumerate(report.findall("c:Ntry", ns), start=1):
            transactions.extend(_entry(entry, ns, report_id, number, source))
    return BankFile(source, kind, sm3(data).hex(), ",".join(sorted(accounts)), tuple(transactions))


def _text(element: etree._Element | None, path: str, ns: dict[str, str]) -> str:
    if element is None:
        return ""
    found = element.find(path, ns)
    return (found.text or "").strip() if found is not None else ""


def _account(element: etree._Element | None, ns: dict[str, str]) -> str:
    return _text(element, "c:Id/c:IBAN", ns) or _text(element, "c:Id/c:Othr/c:Id", ns)


def _date(element: etree._Element | None, ns: dict[str, str]) -> dt.date | None:
    if element is None:
        return None
    day = _text(element, "c:Dt", ns)
    if day:
        return dt.date.fromisoformat(day[:10])
    stamp = _text(element, "c:DtTm", ns)
    return dt.date.fromisoformat(stamp[:10]) if stamp else None


def _amount(element: etree._Element, source: str) -> tuple[int, str]:
    try:
        return parse_xml_amount(element.text or ""), element.get("Ccy", "")
    except ValueError as exc:
        raise BankFileError(str(exc), file=source, row=element.sourceline, line_word="line",
                            column="Amt") from None


def _entry(entry: etree._Element, ns: dict[str, str], report_id: str, number: int, source: str
           ) -> list[BankTransaction]:
    line = entry.sourceline
    status = _text(entry, "c:Sts/c:Cd", ns) or _text(entry, "c:Sts/c:Prtry", ns)
    credit = _text(entry, "c:CdtDbtInd", ns) == "CRDT"
    reversal = _text(entry, "c:RvslInd", ns).lower() in ("true", "1")
    booking = _date(entry.find("c:BookgDt", ns), ns)
    value = _date(entry.find("c:ValDt", ns), ns)
    if booking is None:
        booking = value
    if booking is None:
        raise BankFileError("an entry without a booking or value date", file=source, row=line, line_word="line",
                            column="Ntry/BookgDt")
    entry_amount, entry_currency = _amount(entry.find("c:Amt", ns), source)
    entry_ref = _text(entry, "c:AcctSvcrRef", ns)
    details = entry.findall("c:NtryDtls/c:TxDtls", ns)
    result = []
    for k, detail in enumerate(details or [None], start=1):
        amount, currency = entry_amount, entry_currency
        if detail is not None and detail.find("c:Amt", ns) is not None:
            amount, currency = _amount(detail.find("c:Amt", ns), source)
        elif len(details) > 1:
            raise BankFileError("a batch entry whose transaction details carry no amount", file=source,
                                row=detail.sourceline if detail is not None else line, line_word="line",
                                column="TxDtls/Amt")
        tx_ref = _text(detail, "c:Refs/c:AcctSvcrRef", ns)
        if tx_ref:
            transaction_id = tx_ref
        elif entry_ref:
            transaction_id = entry_ref if len(details) <= 1 else f"{entry_ref}/{k}"
        else:
            transaction_id = f"{report_id}/{number}/{k}"
        e2e = _text(detail, "c:Refs/c:EndToEndId", ns)
        remittance = " ".join(
            [(u.text or "").strip() for u in (detail.findall("c:RmtInf/c:Ustrd", ns) if detail is not None else [])]
            + [(r.text or "").strip() for r in (detail.findall("c:RmtInf/c:Strd/c:CdtrRefInf/c:Ref", ns)
                                                 if detail is not None else [])]).strip()
        debtor = detail.find("c:RltdPties", ns) if detail is not None else None
        result.append(BankTransaction(
            transaction_id=transaction_id, booking_date=booking, value_date=value, amount=amount,
            currency=currency, credit=credit, reversal=reversal,
            end_to_end_id="" if e2e == "NOTPROVIDED" else e2e, remittance=remittance,
            debtor_name=_text(debtor, "c:Dbtr/c:Pty/c:Nm", ns) or _text(debtor, "c:Dbtr/c:Nm", ns),
            debtor_account=_account(debtor.find("c:DbtrAcct", ns) if debtor is not None else None, ns),
            booked=status == "BOOK", location=f"line {detail.sourceline if detail is not None else line}"))
    return result


# ---------------------------------------------------------------------------
# CSV


def _csv_date(text: str, source: str, row: int, column: str, *, optional: bool = False) -> dt.date | None:
    if not text and optional:
        return None
    try:
        value = dt.date.fromisoformat(text)
    except ValueError:
        raise BankFileError("malformed date", file=source, row=row, column=column, expected="YYYY-MM-DD",
                            found=repr(text)) from None
    if value.isoformat() != text:
        raise BankFileError("malformed date", file=source, row=row, column=column, expected="YYYY-MM-DD",
                            found=repr(text))
    return value


def parse_csv(data: bytes, source: str = "<memory>", *, account: str = "") -> BankFile:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BankFileError(f"not UTF-8 (byte {exc.start})", file=source) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise BankFileError("empty file", file=source, expected="a header row: " + ",".join(CSV_COLUMNS)) from None
    except csv.Error as exc:
        raise BankFileError(f"malformed CSV: {exc}", file=source, row=0) from None
    if tuple(h.strip() for h in header) != CSV_COLUMNS:
        raise BankFileError("unexpected header", file=source, row=0, expected=",".join(CSV_COLUMNS),
                            found=",".join(header))
    transactions = []
    seen: dict[str, int] = {}
    row = 0
    try:
        for row, fields in enumerate(reader, start=1):
            if len(fields) != len(CSV_COLUMNS):
                raise BankFileError("wrong number of fields", file=source, row=row,
                                    expected=f"{len(CSV_COLUMNS)} fields", found=f"{len(fields)} fields")
            value = dict(zip(CSV_COLUMNS, (f.strip() for f in fields), strict=True))
            transaction_id = value["transaction_id"]
            if not transaction_id:
                raise BankFileError("missing value", file=source, row=row, column="transaction_id",
                                    expected="the bank's reference of the transaction", found="nothing")
            if transaction_id in seen:
                raise BankFileError("transaction id repeated", file=source, row=row, column="transaction_id",
                                    expected="each transaction once", found=f"also in row {seen[transaction_id]}")
            seen[transaction_id] = row
            if value["direction"] not in ("CRDT", "DBIT"):
                raise BankFileError("unknown direction", file=source, row=row, column="direction",
                                    expected="CRDT or DBIT", found=repr(value["direction"]))
            try:
                amount = parse_amount(value["amount"])
            except ValueError:
                raise BankFileError("malformed amount", file=source, row=row, column="amount",
                                    expected="a positive amount in yuan with at most two decimals, e.g. 1234.50",
                                    found=repr(value["amount"])) from None
            if amount <= 0:
                raise BankFileError("amount must be positive (the direction says which way)", file=source,
                                    row=row, column="amount", expected="> 0", found=repr(value["amount"]))
            if not _CURRENCY.match(value["currency"]):
                raise BankFileError("malformed currency", file=source, row=row, column="currency",
                                    expected="an ISO 4217 code such as CNY", found=repr(value["currency"]))
            if value["reversal"] not in ("true", "false"):
                raise BankFileError("malformed reversal flag", file=source, row=row, column="reversal",
                                    expected="true or false", found=repr(value["reversal"]))
            transactions.append(BankTransaction(
                transaction_id=transaction_id,
                booking_date=_csv_date(value["booking_date"], source, row, "booking_date"),  # type: ignore[arg-type]
                value_date=_csv_date(value["value_date"], source, row, "value_date", optional=True),
                amount=amount, currency=value["currency"], credit=value["direction"] == "CRDT",
                reversal=value["reversal"] == "true", end_to_end_id=value["end_to_end_id"],
                remittance=value["remittance"], debtor_name=value["debtor_name"],
                debtor_account=value["debtor_account"], booked=True, location=f"row {row}"))
    except csv.Error as exc:
        raise BankFileError(f"malformed CSV: {exc}", file=source, row=row + 1) from None
    return BankFile(source, "csv", sm3(data).hex(), account, tuple(transactions))

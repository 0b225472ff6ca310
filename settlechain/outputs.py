"""A party's output folder as typed objects (docs/records.md "Outputs of a job, per party").

:func:`read_outputs` reads what a party wrote (``settlechain party --out DIR``, a local
job's ``A/``, ``B/``, ``H/``, or the plaintext reference's ``out/A``, ``out/B``):

- an operator's folder (A or B) gives :class:`OperatorOutputs`: ``summary.json`` as a
  :class:`Summary`, ``statement.json`` as a :class:`Statement`, ``anchor.json`` as an
  :class:`Anchor` (both None where the folder has none, as after the plaintext
  reference), and ``records.parquet`` / ``quarantine.parquet`` as polars DataFrames,
  read when asked for (:meth:`OperatorOutputs.records`);
- the helper's folder (H) gives :class:`HelperOutputs`: its :class:`HelperSummary`
  (what H learned: the input sizes and the number of pairs it computed on) and its
  :class:`Anchor`.

The fields are the documents' own, under the same names; counts, pairs and totals stay
mappings keyed as in the documents (the engine defines those keys once, in
:mod:`engine.matching.outcome` and :mod:`engine.outputs`).  Every object keeps the whole
document it was read from in ``document``.  A file that is missing, not JSON, or lacks a
field raises :class:`~engine.errors.InputError` naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError

if TYPE_CHECKING:
    import os

    import polars as pl

    from engine.export import ExportResult
    from engine.rules import Rules
    from ledger_anchor.client import LedgerClient

# ---------------------------------------------------------------------------
# reading JSON documents, naming the file and the field


def read_output_json(path: Path) -> dict[str, Any]:
    from engine.export import read_output_json as read  # polars only when reading outputs

    return read(path)



class _Fields:
    """Typed access to a document's fields; a wrong or missing one is an InputError."""

    def __init__(self, document: Mapping[str, Any], path: Path, prefix: str = "") -> None:
        self.document = document
        self.path = path
        self.prefix = prefix

    def value(self, key: str, kind: type | tuple[type, ...], what: str,
              optional: bool = False) -> Any:
        """The field ``key``, which must be of ``kind`` (``what`` says so in the error)."""
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if key not in self.document:
            if optional:
                return None
            raise InputError("missing field", file=str(self.path), column=self.prefix + key,
                             expected=what, found="no such field")
        value = self.document[key]
        if value is None and optional:
            return None
        # bool is an int in Python; a count of True is malformed
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise InputError("wrong type of field", file=str(self.path),
                             column=self.prefix + key, expected=what,
                             found=f"{type(value).__name__} {value!r}"[:120])
        return value

    def text(self, key: str) -> str:
        return str(self.value(key, str, "a string"))

    def optional_text(self, key: str) -> str | None:
        value = self.value(key, str, "a string or null", optional=True)
        return None if value is None else str(value)

    def integer(self, key: str) -> int:
        return int(self.value(key, int, "an integer"))

    def optional_integer(self, key: str) -> int | None:
        value = self.value(key, int, "an integer or null", optional=True)
        return None if value is None else int(value)

    def number(self, key: str) -> float:
        return float(self.value(key, (int, float), "a number"))

    def table(self, key: str) -> _Fields:
        return _Fields(self.value(key, dict, "an object"), self.path, f"{self.prefix}{key}.")

    def optional_table(self, key: str) -> _Fields | None:
        value = self.value(key, dict, "an object or null", optional=True)
        return None if value is None else _Fields(value, self.path, f"{self.prefix}{key}.")

    def integers(self, key: str) -> dict[str, int]:
        """An object of integers, e.g. ``counts``."""
        table = self.table(key)
        return {name: table.integer(name) for name in table.document}

    def amounts(self, key: str) -> dict[str, int | None]:
        """An object of amounts in minor units, null where withheld, e.g. ``totals``."""
        table = self.table(key)
        return {name: table.optional_integer(name) for name in table.document}

    def optional_amounts(self, key: str) -> dict[str, int | None] | None:
        return None if self.optional_table(key) is None else self.amounts(key)

    def objects(self, key: str) -> dict[str, Mapping[str, Any]]:
        """An object of objects, e.g. ``reasons``."""
        table = self.table(key)
        return {name: table.table(name).document for name in table.document}

    def object_list(self, key: str) -> tuple[Mapping[str, Any], ...]:
        value = self.value(key, list, "a list of objects")
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise InputError("wrong type of list item", file=str(self.path),
                                 column=f"{self.prefix}{key}[{i}]", expected="an object",
                                 found=type(item).__name__)
        return tuple(value)

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.value(key, list, "a list of strings")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise InputError("wrong type of list item", file=str(self.path),
                                 column=f"{self.prefix}{key}[{i}]", expected="a string",
                                 found=type(item).__name__)
        return tuple(value)


# ---------------------------------------------------------------------------
# the documents


@dataclass(frozen=True)
class StageTiming:
    """One stage of summary.json ``stages`` (or anchor.json ``anchor_stage``)."""

    seconds: float
    """Wall seconds, waiting included."""
    items: int
    """What the stage processed: rows, PSI elements, MPC pairs, entries appended."""
    waiting_seconds: float
    """Of ``seconds``, the time spent waiting for another party (0.0 when none)."""
    peak_memory_mib: float | None
    """Peak resident memory while the stage ran (private jobs; None otherwise)."""

    @classmethod
    def _read(cls, fields: _Fields) -> StageTiming:
        peak = fields.value("peak_memory_mib", (int, float), "a number", optional=True)
        waiting = fields.value("waiting_seconds", (int, float), "a number", optional=True)
        return cls(seconds=fields.number("seconds"), items=fields.integer("items"),
                   waiting_seconds=0.0 if waiting is None else float(waiting),
                   peak_memory_mib=None if peak is None else float(peak))


def _stages(fields: _Fields) -> tuple[dict[str, StageTiming], float]:
    stages = fields.table("stages")
    timings = {name: StageTiming._read(stages.table(name)) for name, value in
               stages.document.items() if name != "peak_memory_mib"}
    return timings, stages.number("peak_memory_mib")


@dataclass(frozen=True)
class Summary:
    """``summary.json`` of operator A or B: the outcome of this party's own rows."""

    job_id: str
    party: str
    """``A`` or ``B``."""
    member: str | None
    """This party's consortium member id (None in the plaintext reference's older outputs)."""
    counterparty: str
    counterparty_member: str | None
    period: str
    rules_sm3: str
    disclosure: str
    """``aggregate`` | ``flags`` | ``differences``."""
    counts: Mapping[str, int]
    """Rows of this party's file per status (``records`` = all rows), and
    ``unmatched_remote``: the counterparty's unmatched rows."""
    pairs: Mapping[str, int]
    """``matched_exact``, ``matched_tolerance``, ``disputed``: pairs (equal at A and B)."""
    reasons: Mapping[str, Mapping[str, Any]]
    """Per disputed-pair reason code: ``pairs``, ``class_pairs``, ``local_charge``,
    ``remote_charge`` (null where the small-cell rule withholds them), ``in_other``; and
    ``other``, the classes too small to show alone (docs/records.md)."""
    totals: Mapping[str, int | None]
    """Charges in minor units (fen): ``local_charge``, ``agreed_charge``, ... (docs/records.md);
    None where the small-cell rule withholds the sum."""
    held: Mapping[str, int | None] | None
    """None, or the key-matched pairs whose money the small-cell rule withholds:
    ``pairs``, ``local_charge``, ``remote_charge`` (then the settlement is manual review)."""
    invalid_by_reason: Mapping[str, int]
    excluded_by_reason: Mapping[str, int]
    settlement: str
    """``automatic`` or ``manual_review``."""
    settlement_reasons: tuple[str, ...]
    """Why the statement is held for review (empty when automatic)."""
    stages: Mapping[str, StageTiming]
    """Every stage up to ``report``, and ``total`` (the anchor's time is in anchor.json)."""
    peak_memory_mib: float
    document: Mapping[str, Any]
    """The whole document as read."""

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Summary:
        path = Path(path)
        document = read_output_json(path)
        f = _Fields(document, path)
        review = f.table("review")
        stages, peak = _stages(f)
        return cls(
            job_id=f.text("job_id"), party=f.text("party"),
            member=f.optional_text("member"), counterparty=f.text("counterparty"),
            counterparty_member=f.optional_text("counterparty_member"),
            period=f.text("period"), rules_sm3=f.text("rules_sm3"),
            disclosure=f.text("disclosure"), counts=f.integers("counts"),
            pairs=f.integers("pairs"),
            reasons=f.objects("reasons"), totals=f.amounts("totals"),
            held=f.optional_amounts("held"), invalid_by_reason=f.integers("invalid_by_reason"),
            excluded_by_reason=f.integers("excluded_by_reason"),
            settlement=review.text("settlement"), settlement_reasons=review.texts("reasons"),
            stages=stages, peak_memory_mib=peak, document=document,
        )


@dataclass(frozen=True)
class HelperSummary:
    """``summary.json`` of the helper H: what it learned, and its stages."""

    job_id: str
    party: str
    """``H``."""
    member: str
    period: str
    rules_sm3: str
    input_rows: Mapping[str, int]
    """Each operator's input rows, by role (``A``, ``B``)."""
    invalid_rows: Mapping[str, int]
    mpc_pairs: int
    """The candidate pairs H computed on."""
    stages: Mapping[str, StageTiming]
    peak_memory_mib: float
    document: Mapping[str, Any]

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> HelperSummary:
        path = Path(path)
        document = read_output_json(path)
        f = _Fields(document, path)
        learned = f.table("learned")
        stages, peak = _stages(f)
        return cls(job_id=f.text("job_id"), party=f.text("party"), member=f.text("member"),
                   period=f.text("period"), rules_sm3=f.text("rules_sm3"),
                   input_rows=learned.integers("input_rows"),
                   invalid_rows=learned.integers("invalid_rows"),
                   mpc_pairs=learned.integer("mpc_pairs"), stages=stages,
                   peak_memory_mib=peak, document=document)


@dataclass(frozen=True)
class Statement:
    """``statement.json``: the settlement statement A and B co-signed (party-neutral)."""

    job_id: str
    period: str
    rules_sm3: str
    disclosure: str
    operators: Mapping[str, str]
    """Member id by role: ``{"A": ..., "B": ...}``."""
    commitments: Mapping[str, str | None]
    """Each operator's dataset commitment (Merkle root, hex); None in the plaintext reference."""
    records: Mapping[str, int]
    """``a_rows``, ``b_rows``, ``a_considered``, ... (canonical records)."""
    pairs: Mapping[str, int]
    totals: Mapping[str, int | None]
    """Named by party: ``a_charge``, ``b_charge``, ``agreed_charge``, ... (minor units;
    None where withheld)."""
    held: Mapping[str, int | None] | None
    """As :attr:`Summary.held`, named by party."""
    classes: tuple[Mapping[str, Any], ...]
    """The agreed money per direction and rate class (``payer``, ``payee``, ``service``,
    ``call_type``, ``time_band``, ``agreed_charge``); they sum to ``agreed_charge``."""
    settlement: str
    settlement_reasons: tuple[str, ...]
    signers: tuple[str, ...]
    """Member ids whose SM2 signatures the statement carries (empty in the reference)."""
    ledger_index: int | None
    """The ledger entry holding the statement's commitment (None before/without the anchor)."""
    document: Mapping[str, Any]

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Statement:
        path = Path(path)
        document = read_output_json(path)
        f = _Fields(document, path)
        commitments = f.table("commitments")
        operators = f.table("operators")
        signatures = f.value("signatures", list, "a list of signatures")
        signers = []
        for i, item in enumerate(signatures):
            if not isinstance(item, dict) or not isinstance(item.get("signer"), str):
                raise InputError("malformed signature", file=str(path),
                                 column=f"signatures[{i}]",
                                 expected='{"signer": member id, "sig": hex}',
                                 found=repr(item)[:120])
            signers.append(item["signer"])
        ledger = f.optional_table("ledger")
        return cls(
            job_id=f.text("job_id"), period=f.text("period"), rules_sm3=f.text("rules_sm3"),
            disclosure=f.text("disclosure"),
            operators={role: operators.text(role) for role in operators.document},
            commitments={role: commitments.optional_text(role) for role in commitments.document},
            records=f.integers("records"), pairs=f.integers("pairs"), totals=f.amounts("totals"),
            held=f.optional_amounts("held"), classes=f.object_list("classes"),
            settlement=f.text("settlement"), settlement_reasons=f.texts("settlement_reasons"),
            signers=tuple(signers),
            ledger_index=None if ledger is None else ledger.optional_integer("index"),
            document=document,
        )

    def signing_bytes(self) -> bytes:
        """What A and B signed: RFC 8785 JSON of the statement without ``signatures`` and
        ``ledger`` (:func:`engine.outputs.statement_signing_bytes`)."""
        from engine.outputs import statement_signing_bytes

        return statement_signing_bytes(self.document)

    def check_against(self, ledger: LedgerClient) -> None:
        """Return nothing if this statement opens the salted commitment of its ledger entry
        (``ledger.index``); else raise :class:`~ledger_anchor.errors.LedgerError`
        (:func:`ledger_anchor.commitment.open_document`).  Verifying the ledger itself
        (signatures, cosignatures, the tree) is :func:`settlechain.verify_ledger`."""
        from ledger_anchor.commitment import open_document
        from ledger_anchor.errors import EntryError

        if self.ledger_index is None:
            raise EntryError(f"the statement of job {self.job_id!r} names no ledger entry "
                             "(ledger.index): it was not anchored")
        entry = ledger.entry(self.ledger_index)
        if entry.get("kind") != "settlement_statement" or entry.get("job_id") != self.job_id:
            raise EntryError(f"ledger entry {self.ledger_index} is not the settlement statement "
                             f"of job {self.job_id!r} (found kind {entry.get('kind')!r}, job "
                             f"{entry.get('job_id')!r})")
        open_document(self.document, entry)


@dataclass(frozen=True)
class Anchor:
    """``anchor.json``: where the job is on the ledger, as the anchor receipt says."""

    index: int | None
    """The ledger index of the settlement statement."""
    commitment_indices: tuple[int, ...]
    """The ledger indices of A's and B's dataset commitments."""
    leaf_hashes: tuple[str, ...]
    """SM3 leaf hashes (hex) of the three entries."""
    checkpoint: str
    """The signed checkpoint note (C2SP) that covered the entries when they were appended."""
    stage: StageTiming
    """The anchor stage's time."""
    document: Mapping[str, Any]

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Anchor:
        path = Path(path)
        document = read_output_json(path)
        f = _Fields(document, path)
        indices = f.value("commitment_indices", list, "a list of ledger indices")
        hashes = f.texts("leaf_hashes")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
            raise InputError("wrong type of field", file=str(path), column="commitment_indices",
                             expected="a list of integers", found=repr(indices)[:120])
        return cls(index=f.optional_integer("index"), commitment_indices=tuple(indices),
                   leaf_hashes=hashes, checkpoint=f.text("checkpoint"),
                   stage=StageTiming._read(f.table("anchor_stage")), document=document)


# ---------------------------------------------------------------------------
# the folders


def _optional(path: Path, read: Any) -> Any:
    return read(path) if path.exists() else None


@dataclass(frozen=True)
class OperatorOutputs:
    """Operator A's or B's output folder."""

    folder: Path
    summary: Summary
    statement: Statement | None
    """None where the folder has no statement.json (a job that stopped before it)."""
    anchor: Anchor | None
    """None where the folder has no anchor.json (the plaintext reference; a stopped job)."""

    @property
    def role(self) -> str:
        return self.summary.party

    @property
    def job_id(self) -> str:
        return self.summary.job_id

    @property
    def settlement(self) -> str:
        """``automatic`` or ``manual_review``."""
        return self.summary.settlement

    @property
    def report_path(self) -> Path | None:
        """report.html (private jobs), or None."""
        from engine.outputs import REPORT_FILE

        path = self.folder / REPORT_FILE
        return path if path.exists() else None

    def records(self) -> pl.DataFrame:
        """records.parquet: one row per input row with its status, pair id and reasons,
        held to its documented columns and types (:data:`engine.names.RECORDS_OUTPUT_SCHEMA`)."""
        from engine.names import RECORDS_OUTPUT_SCHEMA, conform
        from engine.outputs import RECORDS_FILE

        return conform(_read_parquet(self.folder / RECORDS_FILE), RECORDS_OUTPUT_SCHEMA,
                       str(self.folder / RECORDS_FILE))

    def quarantine(self) -> pl.DataFrame | None:
        """quarantine.parquet: one entry per invalid row (file row, column, reason and the
        row's fields as text), or None where the folder has none."""
        from engine.outputs import QUARANTINE_FILE

        path = self.folder / QUARANTINE_FILE
        return _read_parquet(path) if path.exists() else None

    def export_lists(self, out: str | os.PathLike[str], *, data: str | os.PathLike[str],
                     rules: Rules | str | os.PathLike[str],
                     formats: tuple[str, ...] = ("csv", "parquet")) -> ExportResult:
        """``settlechain export``: the disputes, unmatched and invalid lists as files
        (:func:`engine.export.export_lists`); ``data`` is the billing export this party
        ran on, checked against its outputs first."""
        from engine.export import export_lists
        from engine.rules import Rules, load_rules

        if isinstance(rules, Rules):
            return export_lists(self.folder, Path(out), data=Path(data), rules=rules,
                                formats=formats)
        return export_lists(self.folder, Path(out), data=Path(data), rules=load_rules(Path(rules)),
                            rules_file=Path(rules), formats=formats)


@dataclass(frozen=True)
class HelperOutputs:
    """The helper H's output folder."""

    folder: Path
    summary: HelperSummary
    anchor: Anchor | None

    @property
    def role(self) -> str:
        return self.summary.party

    @property
    def job_id(self) -> str:
        return self.summary.job_id


def _read_parquet(path: Path) -> pl.DataFrame:
    import polars as pl

    try:
        return pl.read_parquet(path)
    except FileNotFoundError:
        raise InputError("file not found", file=str(path),
                         expected="a party's output folder (settlechain party --out)") from None
    except (OSError, pl.exceptions.PolarsError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError("cannot read the file", file=str(path), expected="a Parquet file",
                         found=detail) from None


def read_outputs(folder: str | os.PathLike[str]) -> OperatorOutputs | HelperOutputs:
    """The outputs in ``folder``: :class:`OperatorOutputs` for A or B, :class:`HelperOutputs`
    for H (by summary.json's ``party``)."""
    from engine.outputs import ANCHOR_FILE, STATEMENT_FILE, SUMMARY_FILE

    folder = Path(folder)
    party = _Fields(read_output_json(folder / SUMMARY_FILE), folder / SUMMARY_FILE).text("party")
    if party == "H":
        return HelperOutputs(folder=folder, summary=HelperSummary.read(folder / SUMMARY_FILE),
                             anchor=_optional(folder / ANCHOR_FILE, Anchor.read))
    if party not in ("A", "B"):
        raise InputError("unknown party", file=str(folder / SUMMARY_FILE), column="party",
                         expected="A, B or H", found=repr(party))
    summary = Summary.read(folder / SUMMARY_FILE)
    statement = _optional(folder / STATEMENT_FILE, Statement.read)
    if statement is not None and statement.job_id != summary.job_id:
        raise InputError("the statement is of another job", file=str(folder / STATEMENT_FILE),
                         column="job_id", expected=repr(summary.job_id),
                         found=repr(statement.job_id))
    return OperatorOutputs(folder=folder, summary=summary, statement=statement,
                           anchor=_optional(folder / ANCHOR_FILE, Anchor.read))


def read_operator_outputs(folder: str | os.PathLike[str]) -> OperatorOutputs:
    """:func:`read_outputs` for a folder that must be an operator's (A or B)."""
    outputs = read_outputs(folder)
    if not isinstance(outputs, OperatorOutputs):
        raise InputError("this is the helper's folder, not an operator's",
                         file=str(Path(folder) / "summary.json"), column="party",
                         expected="A or B", found="H")
    return outputs


def read_helper_outputs(folder: str | os.PathLike[str]) -> HelperOutputs:
    """:func:`read_outputs` for a folder that must be the helper's (H)."""
    outputs = read_outputs(folder)
    if not isinstance(outputs, HelperOutputs):
        raise InputError("this is an operator's folder, not the helper's",
                         file=str(Path(folder) / "summary.json"), column="party",
                         expected="H", found=repr(outputs.role))
    return outputs


__all__ = ["Anchor", "HelperOutputs", "HelperSummary", "OperatorOutputs", "StageTiming",
           "Statement", "Summary", "read_helper_outputs", "read_operator_outputs",
           "read_outputs"]

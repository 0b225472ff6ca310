"""``settlechain export``: a party's worklists as files for the tools analysts use.

From a party's output folder (``summary.json``, ``records.parquet``, and where
present ``statement.json`` and ``quarantine.parquet`` / ``quarantine.csv``) and the
party's own billing export (for the calls' values, which records.parquet does not
hold), :func:`export_lists` writes every disputed pair, every unmatched record and
every invalid row, uncapped, as

- ``disputes.csv``, ``unmatched.csv``, ``invalid.csv`` (format: :mod:`engine.report.lists`),
- ``disputes.parquet``, ... (the same columns, typed: Int64 and String),
- ``disputes.xlsx``, ... (one sheet each, typed cells, with the ``xlsx`` extra:
  ``pip install 'settlechain[xlsx]'``, XlsxWriter).

The columns are those of the report page's lists (one definition,
:mod:`engine.report.lists`), so a list downloaded from report.html and the same
list exported are the same CSV; the disclosure policy of the job decides which
columns exist.

Before writing anything it checks that the inputs belong together: the rules file
is the job's (its SM3 hash is summary.json's ``rules_sm3``), the data file is the
one the job read (ingesting it gives the same rows, record ids and statuses as
records.parquet, and, where statement.json holds this party's commitment, the same
Merkle root), and the statement is of the same job.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import InputError, SettlechainError
from engine.report.aggregate import disclosure_policy
from engine.report.frames import PartyFrames
from engine.report.lists import INVALID, LIST_KINDS, SPECS, csv_text, export_frame, label_calls
from engine.rules import Rules

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("csv", "parquet", "xlsx")
XLSX_MAX_ROWS = 1_048_575
"""Data rows of one Excel sheet (1,048,576 rows, one of them the header)."""


class ExportError(SettlechainError):
    """The lists could not be written (or a format cannot be written here)."""


@dataclass(frozen=True)
class ExportedList:
    kind: str
    rows: int
    files: tuple[Path, ...]
    skipped: tuple[str, ...]
    """Formats not written for this list, each with the reason."""


@dataclass(frozen=True)
class ExportResult:
    job_id: str | None
    party: str | None
    policy: str
    lists: tuple[ExportedList, ...]
    input_rows: int
    commitment_checked: bool
    """Whether the data file's Merkle root was compared with statement.json's."""


def xlsx_available() -> bool:
    try:
        import xlsxwriter  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------
# reading a party's output folder


def read_output_json(path: Path) -> dict[str, Any]:
    """A JSON object of a party's output folder; InputError naming the file (and line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", file=str(path),
                         expected="a party's output folder (settlechain party --out)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the file: {exc}", file=str(path)) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError("not JSON", file=str(path), row=exc.lineno,
                         expected="a JSON object", found=exc.msg) from None
    if not isinstance(value, dict):
        raise InputError("not a JSON object", file=str(path), expected="an object",
                         found=type(value).__name__)
    return value


def _read_frame(path: Path) -> pl.DataFrame:
    try:
        if path.suffix == ".csv":
            return pl.read_csv(path, infer_schema=False).with_columns(
                pl.col("row").cast(pl.Int64))
        return pl.read_parquet(path)
    except FileNotFoundError:
        raise InputError("file not found", file=str(path),
                         expected="a party's output folder (settlechain party --out)") from None
    except (OSError, pl.exceptions.PolarsError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError("cannot read the file", file=str(path),
                         expected="the file the job wrote", found=detail) from None


def _quarantine(party_dir: Path) -> pl.DataFrame | None:
    for name in ("quarantine.parquet", "quarantine.csv"):
        path = party_dir / name
        if path.exists():
            return _read_frame(path)
    return None


# ---------------------------------------------------------------------------
# writing


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_csv(frame: pl.DataFrame, path: Path) -> None:
    text = csv_text(frame)
    _atomic(path, lambda p: p.write_text(text, encoding="utf-8", newline=""))


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    _atomic(path, lambda p: frame.write_parquet(p))


def write_xlsx(frame: pl.DataFrame, path: Path, sheet: str) -> None:
    """One sheet: a bold header row (frozen, with filters) and the rows, each cell
    typed: integers as numbers, text as text (never a formula, a number or a link),
    nulls as empty cells."""
    try:
        import xlsxwriter
    except ImportError:
        raise ExportError("XLSX needs XlsxWriter: pip install 'settlechain[xlsx]'") from None
    if frame.height > XLSX_MAX_ROWS:
        raise ExportError(f"{frame.height:,} rows do not fit one Excel sheet "
                          f"(at most {XLSX_MAX_ROWS:,})")

    def write(target: Path) -> None:
        workbook = xlsxwriter.Workbook(str(target), {
            "constant_memory": True, "strings_to_numbers": False,
            "strings_to_formulas": False, "strings_to_urls": False})
        try:
            worksheet = workbook.add_worksheet(sheet)
            bold = workbook.add_format({"bold": True})
            for c, name in enumerate(frame.columns):
                worksheet.write_string(0, c, name, bold)
                width = max(len(name), *(min(40, len(str(v))) for v in
                                         frame[name].head(200).to_list() if v is not None),
                            6) if frame.height else len(name)
                worksheet.set_column(c, c, width + 1)
            worksheet.freeze_panes(1, 0)
            if frame.width:
                worksheet.autofilter(0, 0, max(frame.height, 1), frame.width - 1)
            kinds = ["number" if dtype.is_integer() else "string"
                     for dtype in frame.schema.values()]
            for r, values in enumerate(frame.iter_rows(), start=1):
                for c, value in enumerate(values):
                    if value is None:
                        continue
                    if kinds[c] == "number":
                        worksheet.write_number(r, c, value)
                    else:
                        worksheet.write_string(r, c, value)
        finally:
            workbook.close()

    _atomic(path, write)


# ---------------------------------------------------------------------------
# the export


def load_party_outputs(party_dir: str | Path) -> tuple[dict[str, Any], pl.DataFrame,
                                                       dict[str, Any] | None,
                                                       pl.DataFrame | None]:
    """summary.json, records.parquet, statement.json (None if absent) and the
    quarantine frame (None if absent) of a party's output folder."""
    party_dir = Path(party_dir)
    summary = read_output_json(party_dir / "summary.json")
    statuses = _read_frame(party_dir / "records.parquet")
    statement_path = party_dir / "statement.json"
    statement = read_output_json(statement_path) if statement_path.exists() else None
    return summary, statuses, statement, _quarantine(party_dir)


def _commitment_root(data: str | Path, rules: Rules, summary: Mapping[str, Any],
                     party_dir: Path) -> str | None:
    """This party's commitment recomputed from its export (engine.side.recompute_commitment,
    with the job's period and buckets); None where the export cannot recompute it: the
    buckets of a job with more than one are keyed by both operators' shares, which only the
    party's work folder keeps (``.work/<job>/partition.json``)."""
    from engine.partition import local_partition
    from engine.side import load_partition, recompute_commitment

    buckets = (summary.get("partition") or {}).get("buckets")
    if buckets == 1:
        partition = local_partition(1)  # one bucket: the key places nothing
    else:
        partition = load_partition(party_dir / ".work" / str(summary.get("job_id")))
        if partition is None or partition.n_buckets != buckets:
            return None
    return recompute_commitment(data, rules, _period(summary, rules), partition).root.hex()


def _period(summary: Mapping[str, Any], rules: Rules):
    """The period window the job checked records against (summary.json ``period_window``;
    None when it checked none, as the reference without --period)."""
    from engine.period import PeriodWindow

    window = summary.get("period_window")
    if not isinstance(window, Mapping):
        return None
    return PeriodWindow(label=str(summary.get("period")), start=int(window["start"]),
                        end=int(window["end"]))


def export_lists(party_dir: str | Path, out_dir: str | Path, *, data: str | Path,
                 rules: Rules, rules_file: str | Path | None = None,
                 formats: Sequence[str] = ("csv", "parquet"),
                 lists: Sequence[str] = LIST_KINDS) -> ExportResult:
    """Write the worklists of the party whose outputs are in ``party_dir`` into
    ``out_dir`` (created if needed).  ``data``: the billing export the party ran on;
    ``rules``: the job's rules (``rules_file`` names them in errors).  Raises
    :class:`~engine.errors.InputError` when the inputs do not belong together (module
    docstring) and :class:`ExportError` when a format cannot be written."""
    from engine.ingest import ingest

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise InputError("unknown export format", column="format",
                         expected=" | ".join(FORMATS), found=unknown[0])
    unknown = [k for k in lists if k not in LIST_KINDS]
    if unknown:
        raise InputError("unknown list", column="lists", expected=" | ".join(LIST_KINDS),
                         found=unknown[0])
    if "xlsx" in formats and not xlsx_available():
        raise ExportError("XLSX needs XlsxWriter: pip install 'settlechain[xlsx]'")
    party_dir, out_dir = Path(party_dir), Path(out_dir)
    summary, statuses, statement, quarantine = load_party_outputs(party_dir)

    rules_sm3 = summary.get("rules_sm3")
    if rules_sm3 != rules.sm3_hash():
        raise InputError("these are not the job's rules", file=str(rules_file or rules.source),
                         column="rules_sm3",
                         expected=f"rules whose SM3 hash is summary.json's {rules_sm3!r}",
                         found=rules.sm3_hash())
    party = summary.get("party")
    if statement is not None:
        theirs = statement.get("job_id")
        if theirs != summary.get("job_id"):
            raise InputError("the statement is of another job",
                             file=str(party_dir / "statement.json"), column="job_id",
                             expected=repr(summary.get("job_id")), found=repr(theirs))

    ingested = ingest(data, rules, period=_period(summary, rules))
    frames = PartyFrames(statuses, ingested.records, ingested.rows, quarantine)
    mismatch = frames.input_mismatch()
    if mismatch is not None:
        row, column, expected, found = mismatch
        raise InputError("the data file is not the one this party's job read", file=str(data),
                         row=row, column=column,
                         expected=f"{expected} (as in {party_dir / 'records.parquet'})",
                         found=found)
    committed = None
    if statement is not None and isinstance(statement.get("commitments"), Mapping):
        committed = statement["commitments"].get(party)
    root = _commitment_root(data, rules, summary, party_dir) if isinstance(committed, str) \
        else None
    if root is not None:
        if root != committed:
            raise InputError("the data file is not the one this party's job committed to",
                             file=str(data), column="commitments",
                             expected=f"Merkle root {committed} (statement.json)",
                             found=root)

    policy, problems = disclosure_policy(summary, rules)
    for problem in problems:
        log.warning("export: %s: %s vs %s; exporting under %r", problem.what,
                    problem.expected, problem.found, policy)
    offset = rules.timezone_offset_s
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {out_dir}: {exc.strerror}") from None
    exported = []
    for kind in lists:
        spec = SPECS[kind]
        if spec is INVALID:
            source = frames.invalid_rows()
        else:
            source = label_calls(frames.worklist("disputed" if kind == "disputes"
                                                 else "unmatched"), rules)
        frame = export_frame(spec, source, policy, offset)
        files, skipped = [], []
        for fmt in formats:
            path = out_dir / f"{kind}.{fmt}"
            try:
                if fmt == "csv":
                    write_csv(frame, path)
                elif fmt == "parquet":
                    write_parquet(frame, path)
                else:
                    if frame.height > XLSX_MAX_ROWS:
                        skipped.append(f"xlsx: {frame.height:,} rows do not fit one Excel "
                                       f"sheet (at most {XLSX_MAX_ROWS:,}); use the CSV or "
                                       "Parquet file")
                        continue
                    write_xlsx(frame, path, kind)
            except OSError as exc:
                raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
            files.append(path)
        log.info("export: %s: %d rows -> %s", kind, frame.height,
                 ", ".join(str(f) for f in files))
        exported.append(ExportedList(kind=kind, rows=frame.height, files=tuple(files),
                                     skipped=tuple(skipped)))
    return ExportResult(job_id=summary.get("job_id"), party=party, policy=policy,
                        lists=tuple(exported), input_rows=statuses.height,
                        commitment_checked=root is not None)


__all__ = ["FORMATS", "XLSX_MAX_ROWS", "ExportError", "ExportResult", "ExportedList",
           "export_lists", "load_party_outputs", "write_csv", "write_parquet", "write_xlsx",
           "xlsx_available"]

"""Reading a billing export (CSV or Parquet) into a raw polars frame.

This layer knows file formats, not the meaning of the columns.  It decides the
format from the file's content, reads it with polars, and turns every problem of
the file *as a whole* into one :class:`~engine.errors.InputError` naming the file:
missing or unreadable file, not CSV/Parquet, a header that is not UTF-8, required
columns missing or repeated, CSV quoting that cannot be split into rows.  A file
with the header and no data rows is a valid export of a period without traffic.

Problems of single rows are only *marked* here, never fatal:

- **undecodable bytes**: CSV is read with a lossy UTF-8 decoding (polars
  ``encoding="utf8-lossy"``, which puts U+FFFD where bytes are not UTF-8).  Rows
  holding U+FFFD are marked with the first such column, in file order.  Because a
  valid UTF-8 file may contain U+FFFD as a real character, the marks are only
  kept when the file is in fact not valid UTF-8 (checked only in that case, so the
  common path pays nothing).
- **too many fields**: polars refuses a CSV with a row longer than the header; we
  then re-read it with polars with 16 spare columns after the header's, and mark the
  rows with a non-empty value in a spare column.  Empty surplus fields (trailing
  commas) hold nothing and are ignored.  Only if that fails too (a row more than 16
  fields too long, or quoting polars will not split) is the file read with Python's
  ``csv`` module (strict quoting, same rules, slower), which otherwise says where the
  quoting breaks.  A row with *fewer* fields than the header has its missing fields
  empty, which validation reports as ``missing_value``.

Lines end with ``\n`` or ``\r\n``; a lone ``\r`` is not a line end (polars keeps it in
the field; the csv-module fallback, which only runs for files with over-long rows,
refuses it as malformed).  A blank line inside the data is a row with every field
empty (as polars reads it): it is counted and reported
(``missing_value:record_id``), never skipped.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from engine.errors import InputError
from engine.ingest.schema import INPUT_COLUMNS

log = logging.getLogger(__name__)

CSV, PARQUET = "csv", "parquet"
PARQUET_MAGIC = b"PAR1"
PARQUET_SUFFIXES = (".parquet", ".pq")
_SNIFF_BYTES = 64 * 1024
_SPARE_COLUMNS = 16
_REPLACEMENT = "\ufffd"

#: Leading bytes of common non-CSV files, to say what the file looks like instead.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"PK\x03\x04", "a ZIP archive (e.g. .xlsx or .zip)"),
    (b"\xd0\xcf\x11\xe0", "an OLE2 document (e.g. .xls)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"ARROW1", "an Arrow IPC file"),
    (b"\xff\xfe", "UTF-16 text (expected UTF-8)"),
    (b"\xfe\xff", "UTF-16 text (expected UTF-8)"),
)


@dataclass(frozen=True)
class RawInput:
    """A file read as it is: the columns of the file, one frame row per data row."""

    path: str
    format: str
    """``"csv"`` or ``"parquet"``."""
    frame: pl.DataFrame
    """The file's columns (CSV: all String; Parquet: its own dtypes), in file order."""
    columns: tuple[str, ...]
    """The file's column names, in file order."""
    extra_columns: tuple[str, ...]
    """Columns not in the canonical schema (ignored)."""
    undecodable: pl.Series | None
    """Per row: the first column (file order) holding bytes that are not UTF-8, else null;
    None when the file has no such row."""
    field_count: pl.Series | None
    """Per row: the position of the last non-empty field when a CSV row has non-empty
    fields beyond the header's columns, else null; None when no row has."""

    @property
    def n_rows(self) -> int:
        return self.frame.height


def _fail(path: Path, message: str, **kw: str) -> InputError:
    return InputError(message, file=str(path), **kw)


def read_input(path: str | Path) -> RawInput:
    """Read ``path`` as CSV or Parquet (decided by content).  Raises :class:`InputError`."""
    path = Path(path)
    head = _read_head(path)
    if not head:
        raise _fail(path, "empty file: expected a CSV header row or a Parquet file")
    if head.startswith(PARQUET_MAGIC):
        return _read_parquet(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        raise _fail(path, "not a Parquet file: it does not start with the PAR1 magic bytes")
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            raise _fail(path, f"not a CSV or Parquet file: the content looks like {what}")
    nul = head.find(b"\x00")
    if nul >= 0:
        raise _fail(path, f"not a CSV or Parquet file: binary content (a NUL byte at offset {nul})")
    return _read_csv(path, head)


def _read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(_SNIFF_BYTES)
    except FileNotFoundError:
        raise _fail(path, "file not found") from None
    except IsADirectoryError:
        raise _fail(path, "is a directory, not a file") from None
    except OSError as exc:
        raise _fail(path, f"cannot read the file: {exc.strerror}") from None


# ---------------------------------------------------------------------------
# columns


def _check_columns(path: Path, names: list[str]) -> tuple[str, ...]:
    """Required columns present exactly once; returns the extra columns (warned once)."""
    missing = [c for c in INPUT_COLUMNS if c not in names]
    if missing:
        raise _fail(
            path, "required columns missing: " + ", ".join(missing),
            expected="columns " + ", ".join(INPUT_COLUMNS),
            found=("columns " + ", ".join(names)) if names else "no columns",
        )
    repeated = [c for c in INPUT_COLUMNS if names.count(c) > 1]
    if repeated:
        raise _fail(path, f"column {repeated[0]!r} appears {names.count(repeated[0])} times "
                          "in the header", expected="each column once")
    extra = tuple(n for n in names if n not in INPUT_COLUMNS)
    if extra:
        log.warning("%s: ignoring %d extra column(s): %s", path, len(extra), ", ".join(extra))
    return extra


# ---------------------------------------------------------------------------
# Parquet


def _read_parquet(path: Path) -> RawInput:
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(path, f"unreadable Parquet file: {first_line}") from None
    names = frame.columns
    extra = _check_columns(path, names)
    undecodable = None
    marks: list[str | None] | None = None
    for name in names:
        if frame.schema[name] != pl.Binary:
            continue
        # A BYTE_ARRAY column without a UTF-8 annotation: decode it value by value
        # (an unusual layout, so the per-value loop does not touch the common path).
        text: list[str | None] = []
        for index, value in enumerate(frame.get_column(name).to_list()):
            if value is None:
                text.append(None)
                continue
            try:
                text.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                text.append(value.decode("utf-8", errors="replace"))
                marks = marks or [None] * frame.height
                marks[index] = marks[index] or name
        frame = frame.with_columns(pl.Series(name, text, dtype=pl.String))
    if marks is not None:
        undecodable = pl.Series("undecodable", marks, dtype=pl.String)
    return RawInput(path=str(path), format=PARQUET, frame=frame, columns=tuple(names),
                    extra_columns=extra, undecodable=undecodable, field_count=None)


# ---------------------------------------------------------------------------
# CSV


def _check_header_bytes(path: Path, head: bytes) -> None:
    end = head.find(b"\n")
    line = head if end < 0 else head[:end]
    if line.startswith(b"\xef\xbb\xbf"):
        line = line[3:]
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        if end < 0 and exc.reason == "unexpected end of data":
            return  # the sniffed head cut a character in half; polars reads the rest
        raise _fail(path, f"the CSV header row is not valid UTF-8 "
                          f"(byte 0x{line[exc.start]:02x} at offset {exc.start})") from None


def _read_csv(path: Path, head: bytes) -> RawInput:
    _check_header_bytes(path, head)
    field_count: pl.Series | None = None
    try:
        frame = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy", has_header=True,
                            raise_if_empty=True)
        names = frame.columns
        if any("_duplicated_" in n for n in names):
            # polars renames a repeated header name; take the names as written instead.
            names = _python_header(path)
    except pl.exceptions.NoDataError:
        raise _fail(path, "empty file: no header row") from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        # A row longer than the header, or quoting polars will not split.
        log.info("%s: polars could not read the CSV as it is (%s); re-reading with spare "
                 "columns", path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        try:
            frame, names, field_count = _read_csv_wide(path)
        except (pl.exceptions.PolarsError, OSError, csv.Error) as exc2:
            log.info("%s: polars could not split the rows (%s); re-reading with the csv "
                     "module", path, str(exc2).splitlines()[0] if str(exc2) else "")
            frame, names, field_count = _read_csv_python(path)
    extra = _check_columns(path, names)
    if len(set(names)) != len(names):
        frame = frame.rename(dict(zip(frame.columns, _unique_names(names), strict=True)))
    undecodable = _mark_undecodable(path, frame, names)
    return RawInput(path=str(path), format=CSV, frame=frame, columns=tuple(names),
                    extra_columns=extra, undecodable=undecodable, field_count=field_count)


def _unique_names(names: list[str]) -> list[str]:
    """Names for the frame: required columns keep theirs; repeated extras get a suffix."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        k = seen.get(name, 0)
        seen[name] = k + 1
        out.append(name if k == 0 else f"{name}#{k + 1}")
    return out


def _python_header(path: Path) -> list[str]:
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        return next(csv.reader(handle), [])


def _surplus_marks(spare: pl.DataFrame, width: int) -> pl.Series | None:
    """Position (1-based field number) of the last non-empty spare field per row."""
    last = pl.max_horizontal([
        pl.when(pl.col(c).is_not_null() & (pl.col(c) != "")).then(pl.lit(width + j + 1))
        for j, c in enumerate(spare.columns)
    ]).cast(pl.Int64)
    marks = spare.select(last.alias("field_count")).to_series()
    return marks if marks.null_count() < marks.len() else None


def _read_csv_wide(path: Path) -> tuple[pl.DataFrame, list[str], pl.Series | None]:
    names = _python_header(path)
    width = len(names)
    columns = [f"c{j}" for j in range(width + _SPARE_COLUMNS)]
    frame = pl.read_csv(path, has_header=False, infer_schema=False, encoding="utf8-lossy",
                        schema=dict.fromkeys(columns, pl.String), missing_columns="insert")
    if frame.height == 0:
        raise _fail(path, "empty file: no header row")
    # row 0 is the header: its first ``width`` fields, as polars split them
    names = [v if v is not None else "" for v in frame.row(0)[:width]]
    frame = frame.slice(1)
    field_count = _surplus_marks(frame.select(columns[width:]), width)
    frame = frame.select(columns[:width]).rename(
        dict(zip(columns[:width], _unique_names(names), strict=True)))
    return frame, names, field_count


def _read_csv_python(path: Path) -> tuple[pl.DataFrame, list[str], pl.Series | None]:
    data = path.read_bytes()
    text = data.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    # lines end at "\n" only (as for polars: "\r\n" ends a line, a lone "\r" is no line end)
    reader = csv.reader(io.StringIO(text, newline="\n"), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise _fail(path, "empty file: no header row")
        width = len(header)
        columns: list[list[str | None]] = [[] for _ in range(width)]
        long_rows: dict[int, int] = {}
        for index, fields in enumerate(reader):
            n = len(fields)
            if n > width:
                last = max((j for j in range(width, n) if fields[j] != ""), default=-1)
                if last >= 0:
                    long_rows[index] = last + 1
            for j in range(width):
                value = fields[j] if j < n else None
                columns[j].append(value if value != "" else None)
    except csv.Error as exc:
        raise _fail(path, f"malformed CSV at line {reader.line_num}: {exc}; "
                          "the rows cannot be told apart from there on") from None
    names = list(header)
    frame_names = _unique_names(names)
    frame = pl.DataFrame({frame_names[j]: pl.Series(frame_names[j], columns[j], dtype=pl.String)
                          for j in range(width)})
    field_count = None
    if long_rows:
        counts: list[int | None] = [None] * frame.height
        for index, n in long_rows.items():
            counts[index] = n
        field_count = pl.Series("field_count", counts, dtype=pl.Int64)
    return frame, names, field_count


def _is_utf8(path: Path, chunk_bytes: int = 1 << 24) -> bool:
    """Whether the whole file is valid UTF-8, read in chunks (a 1 GB export read at once,
    then decoded, would cost more than 2 GB)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(chunk_bytes):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _mark_undecodable(path: Path, frame: pl.DataFrame, names: list[str]) -> pl.Series | None:
    """Per row, the first column (file order) with U+FFFD, if the file is not UTF-8."""
    string_columns = [c for c in frame.columns if frame.schema[c] == pl.String]
    if not string_columns:
        return None
    hits = frame.select(
        [pl.col(c).str.contains(_REPLACEMENT, literal=True).fill_null(False).alias(c)
         for c in string_columns]
    )
    if not hits.select(pl.any_horizontal(pl.all()).any()).item():
        return None
    if _is_utf8(path):
        return None  # valid UTF-8: the U+FFFD characters are really in the data
    display = dict(zip(frame.columns, names, strict=True))
    first = pl.coalesce([pl.when(pl.col(c)).then(pl.lit(display[c])) for c in string_columns])
    return hits.select(first.alias("undecodable")).to_series()

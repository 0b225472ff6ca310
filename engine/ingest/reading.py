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
  valid UTF-8 row may contain U+FFFD as a real character, a mark is only kept when
  the row's own bytes are not valid UTF-8 (checked only for a piece of the file
  that is not valid UTF-8, so the common path pays nothing).
- **too many fields**: polars refuses a CSV with a row longer than the header; we
  then re-read the piece with polars with 16 spare columns after the header's, and
  mark the rows with a non-empty value in a spare column.  Empty surplus fields
  (trailing commas) hold nothing and are ignored.  A row with *fewer* fields than the
  header has its missing fields empty, which validation reports as ``missing_value``.

**Which bytes form a row** is decided by one rule, :mod:`engine.ingest.csvsplit`: the
file is cut into pieces of whole records by that rule's scanner (so a file of any size
is read in bounded memory), and wherever polars splits a piece into another number of
rows than the rule (a stray quote inside a field, say), the piece is split by the
rule's own splitter instead.  So every row the rule sees is a row of the output, and
the only CSV refused for its quoting is one whose quoted field never closes.  Lines
end with ``\n`` or ``\r\n``; a lone ``\r`` is not a line end.  A blank line inside
the data is a row with every field empty: it is counted and reported
(``missing_value:record_id``), never skipped.
"""

from __future__ import annotations

import codecs
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from engine.errors import InputError
from engine.ingest.csvsplit import QUOTED, START, record_ends, split_records
from engine.ingest.schema import INPUT_COLUMNS

log = logging.getLogger(__name__)

CSV, PARQUET = "csv", "parquet"
PARQUET_MAGIC = b"PAR1"
PARQUET_SUFFIXES = (".parquet", ".pq")
_SNIFF_BYTES = 64 * 1024
_SPARE_COLUMNS = 16
_BLOCK_BYTES = 1 << 24
CHUNK_ROWS = 1 << 20
"""Rows per piece when a file is read in chunks (memory is bounded by a piece)."""
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
    """A piece of a file read as it is: the columns of the file, one frame row per data row."""

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
    None when the piece has no such row."""
    field_count: pl.Series | None
    """Per row: the position of the last non-empty field when a CSV row has non-empty
    fields beyond the header's columns, else null; None when no row has."""
    first_row: int = 1
    """The 1-based row number (in the whole file) of the frame's first row."""

    @property
    def n_rows(self) -> int:
        return self.frame.height


@dataclass(frozen=True)
class InputFile:
    """An export opened for reading in chunks (:func:`open_input`, :func:`read_chunks`)."""

    path: Path
    format: str
    columns: tuple[str, ...]
    extra_columns: tuple[str, ...]
    estimated_rows: int
    """Parquet: the exact row count from the metadata; CSV: file size over the mean length
    of the first lines (to size partitions before the file is read)."""
    header_bytes: bytes = b""
    """CSV: the header line as it is in the file, with its line end."""
    body_offset: int = 0
    """CSV: where the first data row starts."""
    utf8: bool = True
    """CSV: False when any byte of the file is not UTF-8 (decided while reading)."""


def _fail(path: Path, message: str, **kw: str) -> InputError:
    return InputError(message, file=str(path), **kw)


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


def _sniff(path: Path) -> bytes:
    head = _read_head(path)
    if not head:
        raise _fail(path, "empty file: expected a CSV header row or a Parquet file")
    if head.startswith(PARQUET_MAGIC):
        return head
    if path.suffix.lower() in PARQUET_SUFFIXES:
        raise _fail(path, "not a Parquet file: it does not start with the PAR1 magic bytes")
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            raise _fail(path, f"not a CSV or Parquet file: the content looks like {what}")
    nul = head.find(b"\x00")
    if nul >= 0:
        raise _fail(path, f"not a CSV or Parquet file: binary content (a NUL byte at offset {nul})")
    return head


def open_input(path: str | Path) -> InputFile:
    """Open ``path`` as CSV or Parquet (decided by content): check the header, estimate the
    rows.  Raises :class:`InputError` naming the file; reads no data rows."""
    path = Path(path)
    head = _sniff(path)
    if head.startswith(PARQUET_MAGIC):
        try:
            lazy = pl.scan_parquet(path)
            names = list(lazy.collect_schema().names())
            rows = int(lazy.select(pl.len()).collect().item())
        except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
            raise _fail(path, f"unreadable Parquet file: {_first_line(exc)}") from None
        extra = _check_columns(path, names)
        return InputFile(path=path, format=PARQUET, columns=tuple(names), extra_columns=extra,
                         estimated_rows=rows)
    _check_header_bytes(path, head)
    ends, state, _ = record_ends(head, START)
    if len(ends) == 0 and len(head) == _SNIFF_BYTES:
        raise _fail(path, f"the CSV header row is longer than {_SNIFF_BYTES} bytes")
    header_end = int(ends[0]) + 1 if len(ends) else len(head)
    header_bytes = head[:header_end]
    text = header_bytes.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    records = split_records(text)
    names = records[0] if records else []
    if names == [""] or not names:
        raise _fail(path, "empty file: no header row")
    extra = _check_columns(path, names)
    size = path.stat().st_size
    sample = len(ends) - 1
    if sample > 0:
        per_row = (int(ends[-1]) + 1 - header_end) / sample
        estimate = int((size - header_end) / max(per_row, 1.0)) + 1
    else:
        estimate = 1 if size > header_end else 0
    return InputFile(path=path, format=CSV, columns=tuple(names), extra_columns=extra,
                     estimated_rows=estimate, header_bytes=header_bytes,
                     body_offset=header_end)


def read_chunks(source: InputFile, chunk_rows: int = CHUNK_ROWS) -> Iterator[RawInput]:
    """The file's data rows in pieces of about ``chunk_rows`` rows, in file order (at least
    one piece, possibly empty).  Memory is bounded by a piece, whatever the file's size."""
    if source.format == PARQUET:
        yield from _parquet_chunks(source, chunk_rows)
    else:
        yield from _csv_chunks(source, chunk_rows)


def read_input(path: str | Path) -> RawInput:
    """The whole file as one piece (tests and small files; the job reads in chunks)."""
    source = open_input(path)
    pieces = list(read_chunks(source, chunk_rows=1 << 62))
    if len(pieces) == 1:
        return pieces[0]
    frame = pl.concat([p.frame for p in pieces], how="vertical_relaxed")
    return RawInput(path=str(source.path), format=source.format, frame=frame,
                    columns=source.columns, extra_columns=source.extra_columns,
                    undecodable=_concat_marks([p.undecodable for p in pieces],
                                              [p.n_rows for p in pieces], pl.String),
                    field_count=_concat_marks([p.field_count for p in pieces],
                                              [p.n_rows for p in pieces], pl.Int64))


def _concat_marks(marks: list[pl.Series | None], lengths: list[int], dtype) -> pl.Series | None:
    if all(m is None for m in marks):
        return None
    return pl.concat([m if m is not None else pl.Series([None] * n, dtype=dtype)
                      for m, n in zip(marks, lengths, strict=True)])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


def _parquet_chunks(source: InputFile, chunk_rows: int) -> Iterator[RawInput]:
    path = source.path
    lazy = pl.scan_parquet(path)
    total = source.estimated_rows
    chunk_rows = max(1, min(chunk_rows, total))
    offsets = range(0, total, chunk_rows) if total else range(1)
    for offset in offsets:
        try:
            frame = lazy.slice(offset, chunk_rows).collect()
        except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
            raise _fail(path, f"unreadable Parquet file: {_first_line(exc)}") from None
        yield _parquet_piece(source, frame, offset + 1)


def _parquet_piece(source: InputFile, frame: pl.DataFrame, first_row: int) -> RawInput:
    marks: list[str | None] | None = None
    for name in frame.columns:
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
    undecodable = pl.Series("undecodable", marks, dtype=pl.String) if marks is not None else None
    return RawInput(path=str(source.path), format=PARQUET, frame=frame, columns=source.columns,
                    extra_columns=source.extra_columns, undecodable=undecodable,
                    field_count=None, first_row=first_row)


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
            return  # the sniffed head cut a character in half
        raise _fail(path, f"the CSV header row is not valid UTF-8 "
                          f"(byte 0x{line[exc.start]:02x} at offset {exc.start})") from None


def _csv_chunks(source: InputFile, chunk_rows: int) -> Iterator[RawInput]:
    """Cut the body at record ends (:mod:`engine.ingest.csvsplit`) every ``chunk_rows``
    records, reading the file in blocks of :data:`_BLOCK_BYTES`."""
    path = source.path
    buffer = bytearray()
    ends: list[np.ndarray] = []     # record ends inside ``buffer``
    n_ends = 0
    state = START
    quote_open = -1                 # absolute offset of the quote of an open quoted field
    consumed = source.body_offset   # absolute offset of buffer[0]
    lines_before = 1                # line number (1 = header) of the line before buffer[0]
    first_row = 1
    yielded = False
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise _fail(path, f"cannot read the file: {exc.strerror}") from None
    with handle:
        handle.seek(source.body_offset)
        while True:
            block = handle.read(_BLOCK_BYTES)
            if block:
                block_ends, state, opened = record_ends(block, state)
                if state == QUOTED and opened >= 0:
                    quote_open = consumed + len(buffer) + opened
                elif state != QUOTED:
                    quote_open = -1
                ends.append(block_ends + len(buffer))
                n_ends += len(block_ends)
                buffer += block
            while n_ends >= chunk_rows or (not block and (n_ends or buffer)):
                all_ends = np.concatenate(ends) if len(ends) > 1 else ends[0]
                if n_ends >= chunk_rows:
                    cut = int(all_ends[chunk_rows - 1]) + 1
                    count = chunk_rows
                    rest = all_ends[chunk_rows:] - cut
                else:  # end of file: whatever is left
                    if state == QUOTED:
                        line = lines_before + buffer.count(b"\n", 0, quote_open - consumed) + 1
                        raise _fail(path, f"malformed CSV at line {line}: a quoted field opens "
                                          "there and never closes; the rows cannot be told "
                                          "apart from there on")
                    cut = len(buffer)
                    count = n_ends + (1 if cut and buffer[-1] != 10 else 0)
                    rest = all_ends[:0]
                piece = bytes(buffer[:cut])
                piece_ends = all_ends[:count] if n_ends >= count else all_ends[:n_ends]
                del buffer[:cut]
                ends, n_ends = [rest], len(rest)
                lines_before += piece.count(b"\n")
                consumed += cut
                yield _csv_piece(source, piece, count, first_row, piece_ends)
                yielded = True
                first_row += count
                if not block:
                    break
            if not block:
                break
    if not yielded:
        yield _csv_piece(source, b"", 0, 1, np.zeros(0, dtype=np.int64))


def _csv_piece(source: InputFile, data: bytes, expected: int, first_row: int,
               ends: np.ndarray) -> RawInput:
    """One piece of whole records: polars when it agrees on the number of records, else the
    documented splitter."""
    names = list(source.columns)
    frame_names = _unique_names(names)
    width = len(names)
    frame = field_count = None
    if expected:
        try:
            frame = pl.read_csv(io.BytesIO(data), has_header=False, infer_schema=False,
                                encoding="utf8-lossy", new_columns=frame_names,
                                schema=dict.fromkeys(frame_names, pl.String))
        except (pl.exceptions.PolarsError, OSError):
            try:
                frame, field_count = _csv_piece_wide(data, frame_names)
            except (pl.exceptions.PolarsError, OSError):
                frame = None
        if frame is not None and frame.height != expected:
            log.info("%s: rows %d-%d: polars splits them into %d rows, the CSV rule into %d; "
                     "using the rule", source.path, first_row, first_row + expected - 1,
                     frame.height, expected)
            frame = None
        if frame is None:
            log.info("%s: re-reading rows %d-%d with the csv splitter", source.path, first_row,
                     first_row + expected - 1)
            frame, field_count = _csv_piece_split(data, frame_names)
    else:
        frame = pl.DataFrame(schema=dict.fromkeys(frame_names, pl.String))
    undecodable = None
    if not _is_utf8_bytes(data):
        undecodable = _mark_undecodable(frame, names, data, ends)
    if frame.height != expected:  # pragma: no cover - the splitter counts by the same rule
        raise AssertionError(f"CSV piece: {frame.height} rows read, {expected} expected")
    return RawInput(path=str(source.path), format=CSV, frame=frame, columns=source.columns,
                    extra_columns=source.extra_columns, undecodable=undecodable,
                    field_count=field_count, first_row=first_row)


def _unique_names(names: list[str]) -> list[str]:
    """Names for the frame: required columns keep theirs; repeated extras get a suffix."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        k = seen.get(name, 0)
        seen[name] = k + 1
        out.append(name if k == 0 else f"{name}#{k + 1}")
    return out


def _surplus_marks(spare: pl.DataFrame, width: int) -> pl.Series | None:
    """Position (1-based field number) of the last non-empty spare field per row."""
    last = pl.max_horizontal([
        pl.when(pl.col(c).is_not_null() & (pl.col(c) != "")).then(pl.lit(width + j + 1))
        for j, c in enumerate(spare.columns)
    ]).cast(pl.Int64)
    marks = spare.select(last.alias("field_count")).to_series()
    return marks if marks.null_count() < marks.len() else None


def _csv_piece_wide(data: bytes, frame_names: list[str]) -> tuple[pl.DataFrame, pl.Series | None]:
    """polars with spare columns, for rows longer than the header."""
    width = len(frame_names)
    columns = [f"c{j}" for j in range(width + _SPARE_COLUMNS)]
    frame = pl.read_csv(io.BytesIO(data), has_header=False, infer_schema=False,
                        encoding="utf8-lossy", schema=dict.fromkeys(columns, pl.String),
                        missing_columns="insert")
    field_count = _surplus_marks(frame.select(columns[width:]), width)
    frame = frame.select(columns[:width]).rename(dict(zip(columns[:width], frame_names,
                                                          strict=True)))
    return frame, field_count


def _csv_piece_split(data: bytes, frame_names: list[str]) -> tuple[pl.DataFrame, pl.Series | None]:
    """The documented splitter (:func:`engine.ingest.csvsplit.split_records`)."""
    width = len(frame_names)
    records = split_records(data.decode("utf-8", errors="replace"))
    columns: list[list[str | None]] = [[] for _ in range(width)]
    long_rows: dict[int, int] = {}
    for index, fields in enumerate(records):
        n = len(fields)
        if n > width:
            last = max((j for j in range(width, n) if fields[j] != ""), default=-1)
            if last >= 0:
                long_rows[index] = last + 1
        for j in range(width):
            value = fields[j] if j < n else None
            columns[j].append(value if value != "" else None)
    frame = pl.DataFrame({name: pl.Series(name, columns[j], dtype=pl.String)
                          for j, name in enumerate(frame_names)})
    field_count = None
    if long_rows:
        counts: list[int | None] = [None] * frame.height
        for index, n in long_rows.items():
            counts[index] = n
        field_count = pl.Series("field_count", counts, dtype=pl.Int64)
    return frame, field_count


def _is_utf8_bytes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_utf8(path: Path, chunk_bytes: int = 1 << 24) -> bool:
    """Whether the whole file is valid UTF-8, read in chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(chunk_bytes):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _mark_undecodable(frame: pl.DataFrame, names: list[str], data: bytes,
                      ends: np.ndarray) -> pl.Series | None:
    """Per row, the first column (file order) with U+FFFD, for the rows whose own bytes
    are not UTF-8 (a row that is valid UTF-8 may hold U+FFFD as a real character)."""
    string_columns = [c for c in frame.columns if frame.schema[c] == pl.String]
    if not string_columns:
        return None
    hits = frame.select(
        [pl.col(c).str.contains(_REPLACEMENT, literal=True).fill_null(False).alias(c)
         for c in string_columns]
    )
    if not hits.select(pl.any_horizontal(pl.all()).any()).item():
        return None
    display = dict(zip(frame.columns, names, strict=True))
    first = pl.coalesce([pl.when(pl.col(c)).then(pl.lit(display[c])) for c in string_columns])
    marks = hits.select(first.alias("undecodable")).to_series()
    starts = np.concatenate([[0], np.asarray(ends, dtype=np.int64) + 1])
    keep = np.zeros(len(marks), dtype=bool)
    for index in marks.is_not_null().arg_true().to_list():
        stop = int(ends[index]) if index < len(ends) else len(data)
        keep[index] = not _is_utf8_bytes(data[int(starts[index]):stop])
    if not keep.any():
        return None
    return pl.select(pl.when(pl.lit(pl.Series(keep))).then(pl.lit(marks))).to_series() \
        .alias("undecodable")

"""Where the records of a CSV file end, and the fields of a record, by one documented rule.

docs/records.md reads CSV like RFC 4180 with two leniencies, and this module is the one
definition of that reading (polars parses the common case fast; wherever polars
disagrees with this rule about how many records a piece of the file holds, the piece is
split here instead, so the rows counted are always the rows this rule sees):

- a record ends at a line feed outside a quoted field (``\\r\\n`` ends a line too; a
  lone ``\\r`` does not);
- a double quote opens a quoted field only at the start of a field; inside a quoted
  field ``""`` is one quote and a single ``"`` closes it;
- a quote anywhere else, or text after a closing quote, is kept literally (a "stray
  quote" never swallows the following lines);
- a blank line is a record (every field empty); the last record may lack a line feed.

:func:`record_ends` scans raw bytes with this state machine (numba, about a
nanosecond per byte), carrying the state from one block of the file to the next, so a
file of any size is cut into chunks at record boundaries without being read whole.
:func:`split_records` gives the fields of the records of one chunk (pure Python; it
runs only on chunks that polars reads differently).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: scanner states
START, UNQUOTED, QUOTED, CLOSING = 0, 1, 2, 3
_LF, _CR, _QUOTE, _COMMA = 10, 13, 34, 44


@njit(cache=True, nogil=True)
def _scan(data, state, ends):  # pragma: no cover - compiled
    n_ends = 0
    quote_open = -1
    for i in range(data.shape[0]):
        c = data[i]
        if state == QUOTED:
            if c == _QUOTE:
                state = CLOSING
            continue
        if state == CLOSING and c == _QUOTE:
            state = QUOTED
            continue
        if c == _LF:
            ends[n_ends] = i
            n_ends += 1
            state = START
        elif c == _COMMA:
            state = START
        elif c == _QUOTE and state == START:
            state = QUOTED
            quote_open = i
        else:
            state = UNQUOTED
    return n_ends, state, quote_open


def record_ends(block: bytes | np.ndarray, state: int) -> tuple[np.ndarray, int, int]:
    """Positions (in ``block``) of the line feeds that end a record, the state after the
    block, and the position where the quoted field still open at the end opened (-1)."""
    data = np.frombuffer(block, dtype=np.uint8) if isinstance(block, (bytes, bytearray,
                                                                       memoryview)) else block
    ends = np.empty(int(np.count_nonzero(data == _LF)), dtype=np.int64)
    n, state, quote_open = _scan(data, np.int64(state), ends)
    return ends[:n], int(state), int(quote_open)


def split_records(text: str) -> list[list[str]]:
    """The records of ``text`` (whole records, as :func:`record_ends` cuts them) as lists
    of field values, by the rule of the module docstring.  A final line feed does not
    start another record; ``\\r\\n`` loses its ``\\r``."""
    records: list[list[str]] = []
    fields: list[str] = []
    field: list[str] = []
    state = START
    pending = False
    for char in text:
        pending = True
        if state == QUOTED:
            if char == '"':
                state = CLOSING
            else:
                field.append(char)
            continue
        if state == CLOSING and char == '"':
            field.append('"')
            state = QUOTED
            continue
        if char == "\n":
            if field and field[-1] == "\r":
                field.pop()
            fields.append("".join(field))
            records.append(fields)
            fields, field, state, pending = [], [], START, False
        elif char == ",":
            fields.append("".join(field))
            field, state = [], START
        elif char == '"' and state == START:
            state = QUOTED
        else:
            field.append(char)
            state = UNQUOTED
    if pending:
        fields.append("".join(field))
        records.append(fields)
    return records


def warm_up() -> None:
    """Compile (or load from the cache) the scanner."""
    record_ends(b'a,"b\n"\n', START)

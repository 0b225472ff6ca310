"""The chunked UTF-8 check of a CSV file equals decoding the whole file at once, for
any bytes and any chunk size (characters split across chunks included)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.ingest.reading import _is_utf8

# mostly valid text (ASCII, CJK, emoji), sometimes a stray byte
_pieces = st.one_of(st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
                    st.binary(max_size=3))


@settings(max_examples=300, deadline=None)
@given(data=st.lists(_pieces, max_size=12).map(b"".join), chunk=st.integers(1, 9))
def test_chunked_check_equals_decoding_at_once(data: bytes, chunk: int) -> None:
    try:
        data.decode("utf-8")
        expected = True
    except UnicodeDecodeError:
        expected = False
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.csv"
        path.write_bytes(data)
        assert _is_utf8(path, chunk) is expected

"""The audit batch's framing (notifier.store.audit): every field comes back exactly."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.store.audit import AUDIT_FIELDS, AuditRow, decode_batch, encode_batch

ROW = AuditRow(
    "KN-1",
    "F-1",
    "Shipped",
    "2026-11-20 10:00:00.000000",
    "2026-11-20 10:05:00.123456",
    "applied",
    '{"order_id": "KN-1", "fulfillment_id": "F-1", "status": "Shipped"}',
)

# Any text at all, separators, controls and lone surrogates included.
FIELD = st.text(st.characters(codec=None, blacklist_categories=()), max_size=12)
ROWS = st.lists(st.tuples(*[FIELD] * len(AUDIT_FIELDS)), min_size=1, max_size=8)


def test_a_plain_batch_is_separated_text_and_comes_back_as_it_went() -> None:
    rows = [ROW, ROW._replace(fulfillment_id="F-2", outcome="stale")]
    body = encode_batch(rows)
    assert body[:1] == b"S"
    assert zlib.decompress(body[1:], -15).decode().split("\x1f")[7 + 1] == "F-2"
    assert decode_batch(body) == rows


@pytest.mark.parametrize("odd", ["F\x1f2", "\x1f", "F\x1e2", "F-2\ud800"])
def test_an_id_holding_a_separator_or_a_lone_surrogate_comes_back_exactly(odd: str) -> None:
    rows = [ROW, ROW._replace(fulfillment_id=odd)]
    body = encode_batch(rows)
    # A separated join would not split back with U+001F inside a field; other controls and
    # lone surrogates keep the separated kind.
    assert body[:1] == (b"J" if "\x1f" in odd else b"S")
    assert decode_batch(body) == rows


@given(ROWS)
def test_any_rows_come_back_exactly(rows: list[tuple[str, ...]]) -> None:
    assert decode_batch(encode_batch(rows)) == [AuditRow(*row) for row in rows]


def test_a_body_of_an_unknown_kind_is_refused_saying_so() -> None:
    with pytest.raises(ValueError, match="unknown kind b'X'"):
        decode_batch(b"X" + zlib.compress(b"", 1, -15))

"""The audit copy of every accepted record, kept in bulk: one row per ingest transaction.

Each ingest transaction appends ONE row to `record_batches`: its records exactly as
received, each with where it belongs and its outcome, framed and compressed together; and
`record_orders` names the batches holding an order's records, one entry per order and
batch. A row of its own for every record, under an order index, was most of what a
million-record ingest wrote (design.md §6). Append-only: nothing here is updated.

A batch's body is one kind byte, then its text as raw deflate (notifier.store.compression;
no header or checksum: the ledger's own rows carry none either):
- `S`: every record's fields, seven each, in order, all joined by U+001F. The received
  text is JSON, which cannot hold that character raw, and a record's ids refuse control
  characters (notifier.core.records), so the text splits back exactly.
- `J`: the same fields as a JSON array of arrays, should a field ever hold it (a record
  built some other way): checked on every write, never assumed.
The kind byte is the format: a later one adds a kind and still reads these.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from itertools import chain
from typing import NamedTuple

from sqlalchemy import Connection, select

from notifier.core.decide import Outcome
from notifier.core.history import ReceivedRecord
from notifier.store.compression import deflate
from notifier.store.schema import STALE_BATCH, as_utc, record_batches, record_orders


class AuditRow(NamedTuple):
    """One record as a batch keeps it: all text, moments as SQLite's stamp text (UTC)."""

    order_id: str
    fulfillment_id: str
    status: str
    occurred_at: str  # when it happened, as reported (else its receipt): a future date kept
    received_at: str
    outcome: str  # applied | repeat | stale | duplicate
    payload: str  # the record exactly as received


AUDIT_FIELDS = AuditRow._fields
_FIELD = "\x1f"
_WIDTH = len(AUDIT_FIELDS)
# Raw deflate: zlib's format without its header and Adler-32 (1% of ingesting a record),
# read with the largest window, which reads any smaller one.
_RAW = -15
_SEPARATED, _JSON = b"S", b"J"
# Lone surrogates (an id given as "\ud800") are kept as they came, not refused at the write.
_ERRORS = "surrogatepass"
_STALE = Outcome.STALE.value


def encode_batch(rows: Sequence[Sequence[str]]) -> bytes:
    """A batch's body: `rows` (each AUDIT_FIELDS, as text) framed and compressed."""
    text = _FIELD.join(chain.from_iterable(rows))
    # The join adds exactly this many separators: one more anywhere came inside a field.
    if text.count(_FIELD) == _WIDTH * len(rows) - 1:
        return _SEPARATED + deflate(text.encode("utf-8", _ERRORS), raw=True)
    encoded = json.dumps([list(row) for row in rows], ensure_ascii=False)
    return _JSON + deflate(encoded.encode("utf-8", _ERRORS), raw=True)


def decode_batch(body: bytes) -> list[AuditRow]:
    """A batch's rows, in the order they were received."""
    kind = body[:1]
    text = zlib.decompress(body[1:], _RAW).decode("utf-8", _ERRORS)
    if kind == _SEPARATED:
        fields = text.split(_FIELD)
        return [AuditRow(*fields[at : at + _WIDTH]) for at in range(0, len(fields), _WIDTH)]
    if kind == _JSON:
        return [AuditRow(*row) for row in json.loads(text)]
    raise ValueError(f"an audit batch of unknown kind {kind!r}")


def received_record(row: AuditRow) -> ReceivedRecord:
    return ReceivedRecord(
        order_id=row.order_id,
        fulfillment_id=row.fulfillment_id,
        status=row.status,
        occurred_at=as_utc(row.occurred_at),
        received_at=as_utc(row.received_at),
        outcome=row.outcome,
        payload=json.loads(row.payload),
    )


def order_records(
    conn: Connection, order_id: str, *, fulfillment_ids: Collection[str] | None = None
) -> list[ReceivedRecord]:
    """An order's records (or just these fulfillments'), in the order received."""
    query = (
        select(record_batches.c.body)
        .join(record_orders, record_orders.c.batch_id == record_batches.c.id)
        .where(record_orders.c.order_id == order_id)
        .order_by(record_batches.c.id)
    )
    found = []
    for (body,) in conn.execute(query):
        for row in decode_batch(body):
            if row.order_id == order_id and (
                fulfillment_ids is None or row.fulfillment_id in fulfillment_ids
            ):
                found.append(received_record(row))
    # Batches are numbered as they commit; a webhook's receipt can precede a batch run's
    # that committed first, so receipt decides (a stable sort keeps the rest in order).
    found.sort(key=lambda record: record.received_at)
    return found


def stale_records(conn: Connection, *, since: datetime) -> list[ReceivedRecord]:
    """The stale records received since `since`, newest first: read from the batches that
    hold any (on their partial index), not from the audit of every record."""
    query = (
        select(record_batches.c.body)
        .where(STALE_BATCH, record_batches.c.received_at >= since)
        # The index's own order: read on it, newest first, nothing to sort.
        .order_by(record_batches.c.received_at.desc(), record_batches.c.id.desc())
    )
    found = [
        record
        for (body,) in conn.execute(query)
        for row in reversed(decode_batch(body))
        if row.outcome == _STALE and (record := received_record(row)).received_at >= since
    ]
    # Newest first; among equal receipts, the later stored first (a stable sort).
    found.sort(key=lambda record: record.received_at, reverse=True)
    return found


def all_rows(conn: Connection) -> Iterator[AuditRow]:
    """Every record of the audit as kept, in the order stored."""
    query = select(record_batches.c.body).order_by(record_batches.c.id)
    for (body,) in conn.execute(query):
        yield from decode_batch(body)

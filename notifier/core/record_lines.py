"""The JSONL hot path: a plain line decoded straight into a Record, or None for the general way.

A batch can hold a million lines, and reading them through json.loads and then checking
each value in Python (notifier.core.records.parse_record) cost four times the parsing
itself (bench/ingest.py, floor 1). msgspec decodes a line into a typed struct in C, in a
quarter of json.loads' time, and checks types and lengths on the way. Everything it does not
settle goes the general way, which is the only writer of a rejection:

- A line that is not all printable ASCII, or holds a backslash escape, may hide a control
  character or a lone surrogate behind an escape; the general parser looks at every value.
  (Raw control characters cannot occur in a JSON string; DEL can, so it is looked for.)
- Any field the struct does not know (a Konnektive spelling, an extra field), any value of
  another type (a number for an id), a missing or invalid field: decoding or the checks
  below fail, and the general parser says what and where, exactly as it always has.

So the fast path only ever accepts, and what it accepts is the very Record the general
parser would build (tests/unit/test_record_lines.py compares the two over generated lines).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from notifier.core.fields import EMAIL_SHAPE, MAX_EMAIL_LENGTH, MAX_FIELD_LENGTH
from notifier.core.models import STATUS_BY_SPELLING, Record

# Longer values may still be accepted by the general parser (its limit applies after
# stripping spaces): they are left to it.
_Text = Annotated[str, msgspec.Meta(max_length=MAX_FIELD_LENGTH)] | None


class _Line(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The fields of docs/design.md §2 by their own names, every value text (or null)."""

    order_id: _Text = None
    fulfillment_id: _Text = None
    status: _Text = None
    occurred_at: _Text = None
    event_id: _Text = None
    email: Annotated[str, msgspec.Meta(max_length=MAX_EMAIL_LENGTH)] | None = None
    first_name: _Text = None
    last_name: _Text = None
    tracking_number: _Text = None
    carrier: _Text = None
    ship_method: _Text = None
    shipped_at: _Text = None
    delivered_at: _Text = None
    campaign_id: _Text = None
    order_fulfillment_ids: list[_Text] | _Text = None


_decode = msgspec.json.Decoder(_Line).decode


def fast_record(line: str, *, received_at: datetime) -> Record | None:
    """The Record of a JSONL line (without its line end), or None: parse it the general way."""
    if not line.isascii() or "\\" in line or "\x7f" in line:
        return None
    try:
        wire = _decode(line)
    except msgspec.DecodeError:  # broken JSON, an unknown field, a value of another type
        return None
    # Every value is stripped as it is taken, inline: `(v.strip() or None) if v else None`
    # by a helper's call cost more than the stripping, eleven times a line. (Looking on the
    # line for a space beside a quote first, to skip the stripping, cost more still: four
    # scans of a line took ~1,000 ns, the stripping of every field ~150 ns.)
    order_id = (v.strip() or None) if (v := wire.order_id) else None
    fulfillment_id = (v.strip() or None) if (v := wire.fulfillment_id) else None
    status = STATUS_BY_SPELLING.get(v) if (v := wire.status) else None
    if order_id is None or fulfillment_id is None or status is None:
        return None  # missing, blank, or a status spelling the general parser works out
    occurred_at = None
    if v := wire.occurred_at:
        try:
            occurred_at = datetime.fromisoformat(v.strip())
        except ValueError:
            return None
        if occurred_at.tzinfo is None:
            return None
    email: str | None = None
    # The decoder has held the address to MAX_EMAIL_LENGTH: its shape is all left to check.
    if (v := wire.email) and not EMAIL_SHAPE.fullmatch(email := v.strip()):
        return None
    # Every space goes, inside too, as in the general parser: the split strips as well.
    tracking = ("".join(v.split()) or None) if (v := wire.tracking_number) else None
    ids = wire.order_fulfillment_ids
    if ids is None or ids == "":
        order_fulfillment_ids: tuple[str, ...] = ()
    else:
        items = ids.split(";") if isinstance(ids, str) else ids
        if None in items:
            return None  # a null in the list: the general parser names it
        order_fulfillment_ids = tuple(
            dict.fromkeys(value for item in items if item and (value := item.strip()))
        )
    # By position, in the order Record declares its fields (the equivalence test in
    # tests/unit/test_record_lines.py would catch a slip): a call with eighteen keywords
    # cost a fifth of the record's construction.
    return Record(
        order_id,
        fulfillment_id,
        status,
        received_at,
        occurred_at,
        (v.strip() or None) if (v := wire.event_id) else None,
        email,
        (v.strip() or None) if (v := wire.first_name) else None,
        (v.strip() or None) if (v := wire.last_name) else None,
        tracking,
        (v.strip() or None) if (v := wire.carrier) else None,
        (v.strip() or None) if (v := wire.ship_method) else None,
        (v.strip() or None) if (v := wire.shipped_at) else None,
        (v.strip() or None) if (v := wire.delivered_at) else None,
        (v.strip() or None) if (v := wire.campaign_id) else None,
        order_fulfillment_ids,
        {},
        line,
    )

"""Reading status-change records (docs/design.md §2) from JSONL, JSON or CSV.

Parsing is hand-written rather than a pydantic model per record: a batch can hold a
million records and this loop is the ingest hot path (see bench/ingest.py).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from notifier.core.fields import MAX_FIELD_LENGTH, plain_email
from notifier.core.models import Record, Status
from notifier.core.record_lines import fast_record

# Konnektive (and camelCase) spellings -> our field names.
ALIASES: dict[str, str] = {
    "orderId": "order_id",
    "fulfillmentId": "fulfillment_id",
    "fulfillmentStatus": "status",
    "occurredAt": "occurred_at",
    "eventId": "event_id",
    "emailAddress": "email",
    "firstName": "first_name",
    "lastName": "last_name",
    "trackingNumber": "tracking_number",
    "shipCarrier": "carrier",
    "shipMethod": "ship_method",
    "dateShipped": "shipped_at",
    "dateDelivered": "delivered_at",
    "campaignId": "campaign_id",
    "orderFulfillmentIds": "order_fulfillment_ids",
}
TEXT_FIELDS = (
    "event_id",
    "first_name",
    "last_name",
    "carrier",
    "ship_method",
    "shipped_at",
    "delivered_at",
    "campaign_id",
)
KNOWN_FIELDS = frozenset(
    {
        "order_id",
        "fulfillment_id",
        "status",
        "occurred_at",
        "email",
        "tracking_number",
        "order_fulfillment_ids",
        *TEXT_FIELDS,
    }
)
REQUIRED_FIELDS = ("order_id", "fulfillment_id", "status")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WHITESPACE = re.compile(r"\s+")


_TOO_DEEP = "broken JSON: nested too deeply"


class RecordInvalid(ValueError):
    """A record does not follow docs/design.md §2."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that was not accepted, with where it was and why."""

    source: str
    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source} {self.location}: {self.reason}"


def parse_record(
    data: Mapping[str, Any], *, received_at: datetime, received_text: str | None = None
) -> Record:
    """Validate one record's fields; raise RecordInvalid naming the field."""
    if not isinstance(data, Mapping):
        raise RecordInvalid(f"expected a JSON object, got {type(data).__name__}")
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    # A line read as UTF-8 can only hold a lone surrogate through a JSON "\u" escape: lines
    # without one (nearly all) skip the per-value check, which the ingest hot path felt.
    check_surrogates = received_text is None or "\\u" in received_text
    for name, value in data.items():
        if check_surrogates:
            _require_utf8(name, value)
        key = ALIASES.get(name, name)
        if key in KNOWN_FIELDS:
            if key in fields:
                raise RecordInvalid(f"field {key!r} is given twice (as {name!r} too)")
            fields[key] = value
        else:
            extra[name] = value

    missing = [
        name for name in REQUIRED_FIELDS if fields.get(name) is None or fields.get(name) == ""
    ]
    if missing:
        raise RecordInvalid(
            f"missing field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
        )
    status_text = fields["status"]
    if not isinstance(status_text, str):
        raise RecordInvalid(f"field 'status' must be text, got {status_text!r}")
    try:
        status = Status.parse(status_text)
    except ValueError as exc:
        raise RecordInvalid(str(exc)) from None

    text = {
        name: _text(value, name) or None
        for name in TEXT_FIELDS
        if (value := fields.get(name)) is not None
    }
    tracking = _optional_text(fields, "tracking_number")
    if tracking is not None:
        tracking = _WHITESPACE.sub("", tracking) or None
    return Record(
        order_id=_required_id(fields, "order_id"),
        fulfillment_id=_required_id(fields, "fulfillment_id"),
        status=status,
        received_at=received_at,
        occurred_at=_optional_time(fields.get("occurred_at")),
        email=_optional_email(fields.get("email")),
        tracking_number=tracking,
        order_fulfillment_ids=_id_list(fields.get("order_fulfillment_ids")),
        extra=extra,
        received_text=received_text,
        **text,
    )


def _require_utf8(name: Any, value: Any) -> None:
    """Reject lone surrogates ("\\ud800" in JSON): neither the store nor a mail can carry them."""
    stack = [name, value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise RecordInvalid(
                        f"field {str(name).encode('utf-8', 'backslashreplace').decode()!r}"
                        " contains an invalid character (a lone UTF-16 surrogate)"
                    ) from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _text(value: Any, name: str) -> str:
    # `type is str` first: nearly every value is one, and this runs for six fields a record.
    if type(value) is str:
        text = value.strip()
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):  # a str subclass
        text = str(value).strip()
    else:
        raise RecordInvalid(f"field {name!r} must be text, got {value!r}")
    if len(text) > MAX_FIELD_LENGTH:
        raise RecordInvalid(f"field {name!r} is longer than {MAX_FIELD_LENGTH} characters")
    # isprintable() is the fast path; it is also False for harmless characters (e.g. NBSP),
    # so only then look for real control characters.
    if not text.isprintable() and _CONTROL.search(text):
        # CR/LF would let customer data inject mail headers; NUL breaks stores and mailers.
        raise RecordInvalid(f"field {name!r} contains a control character (CR, LF, NUL, ...)")
    return text


def _required_id(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if value is None or value == "":
        raise RecordInvalid(f"missing field {name!r}")
    text = _text(value, name)
    if not text:
        raise RecordInvalid(f"field {name!r} is blank")
    return text


def _optional_text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    return _text(value, name) or None


def _optional_email(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordInvalid(f"field 'email' must be text, got {value!r}")
    if "\r" in value or "\n" in value:
        raise RecordInvalid("field 'email' contains CR or LF")
    email = value.strip()
    if not plain_email(email):
        raise RecordInvalid(f"field 'email' is not a valid address: {email!r}")
    return email


def _optional_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordInvalid(f"field 'occurred_at' must be an ISO 8601 string, got {value!r}")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RecordInvalid(f"field 'occurred_at' is not ISO 8601: {value!r}") from None
    if moment.tzinfo is None:
        raise RecordInvalid(
            f"field 'occurred_at' needs a UTC offset (e.g. 'Z' or '+02:00'): {value!r}"
        )
    return moment


def _id_list(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items: Iterable[Any] = value.split(";")
    elif isinstance(value, list):
        items = value
    else:
        raise RecordInvalid(
            f"field 'order_fulfillment_ids' must be a list or ';'-separated text, got {value!r}"
        )
    ids = tuple(text for item in items if (text := _text(item, "order_fulfillment_ids")))
    return tuple(dict.fromkeys(ids))


# --- sources ---------------------------------------------------------------------------


def read_records(
    stream: IO[str], *, source: str, received_at: datetime, format: str | None = None
) -> Iterator[Record | Rejection]:
    """Yield each record of a stream, or a Rejection saying where and why it is bad.

    `format` is "jsonl", "json" or "csv"; by default it is sniffed from the content.
    """
    if format is None:
        format, stream = _sniff(stream)
    if format == "csv":
        yield from _read_csv(stream, source=source, received_at=received_at)
    elif format == "json":
        yield from _read_json(stream.read(), source=source, received_at=received_at)
    elif format == "jsonl":
        yield from _read_jsonl(stream, source=source, received_at=received_at)
    else:
        raise ValueError(f"unknown record format {format!r}")


def read_path(path: Path, *, received_at: datetime) -> Iterator[Record | Rejection]:
    """Read records from a file; the extension (.jsonl, .json, .csv) picks the format."""
    format = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}.get(path.suffix.lower())
    with path.open(encoding="utf-8-sig", newline="") as stream:
        yield from read_records(stream, source=str(path), received_at=received_at, format=format)


def parse_json_body(
    body: Any, *, source: str, received_at: datetime, text: str | None = None
) -> Iterator[Record | Rejection]:
    """Records from an already-decoded JSON value: one object, a list, or {"records": [...]}.

    `text` is the JSON as received: a body that is one record keeps it as its audit copy."""
    items = _json_items(body)
    if items is None:
        yield from _one(body, source, "index 0", received_at, text)
        return
    for index, item in enumerate(items):
        yield from _one(item, source, f"index {index}", received_at)


def _json_items(body: Any) -> list[Any] | None:
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and set(body) == {"records"}:
        records = body["records"]
        return records if isinstance(records, list) else [records]
    return None


def _one(
    data: Any, source: str, location: str, received_at: datetime, text: str | None = None
) -> Iterator[Record | Rejection]:
    try:
        yield parse_record(data, received_at=received_at, received_text=text)
    except RecordInvalid as exc:
        yield Rejection(source, location, str(exc))


def _sniff(stream: IO[str]) -> tuple[str, IO[str]]:
    head = stream.read(4096)
    rest = io.StringIO(head + stream.read()) if not stream.seekable() else None
    if rest is None:
        stream.seek(0)
    else:
        stream = rest
    first = head.lstrip()[:1]
    if first == "[":
        return "json", stream
    if first == "{":
        first_line = head.lstrip().split("\n", 1)[0]
        try:
            value = json.loads(first_line)
        except (ValueError, RecursionError):
            return "json", stream  # an object spread over several lines
        return ("json" if _json_items(value) is not None else "jsonl"), stream
    return "csv", stream


def _read_jsonl(
    stream: IO[str], *, source: str, received_at: datetime
) -> Iterator[Record | Rejection]:
    loads = json.loads
    for number, line in enumerate(stream, start=1):
        text = line.rstrip("\r\n")
        # Nearly every line of a batch is plain: decoded straight into its record.
        record = fast_record(text, received_at=received_at)
        if record is not None:
            yield record
            continue
        if not line.strip():
            continue
        try:
            data = loads(line)
        except ValueError:
            yield Rejection(source, f"line {number}", _json_problem(line.rstrip()))
            continue
        except RecursionError:
            yield Rejection(source, f"line {number}", _TOO_DEEP)
            continue
        try:
            yield parse_record(data, received_at=received_at, received_text=text)
        except RecordInvalid as exc:
            yield Rejection(source, f"line {number}", str(exc))


def _json_problem(line: str) -> str:
    try:
        json.loads(line)
    except json.JSONDecodeError as exc:
        return f"broken JSON: {exc.msg} (column {exc.colno})"
    except ValueError as exc:  # e.g. a number too long to convert
        return f"broken JSON: {exc}"
    return "broken JSON"


def _read_json(text: str, *, source: str, received_at: datetime) -> Iterator[Record | Rejection]:
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        yield Rejection(
            source, f"line {exc.lineno}", f"broken JSON: {exc.msg} (column {exc.colno})"
        )
        return
    except RecursionError:
        yield Rejection(source, "line 1", _TOO_DEEP)
        return
    yield from parse_json_body(body, source=source, received_at=received_at)


def _read_csv(
    stream: IO[str], *, source: str, received_at: datetime
) -> Iterator[Record | Rejection]:
    reader = csv.DictReader(stream)
    try:
        if not reader.fieldnames:
            return
    except csv.Error as exc:
        yield Rejection(source, "line 1", f"broken CSV header: {exc}")
        return
    line = reader.line_num
    rows = iter(reader)
    while True:
        location = f"line {line + 1}"
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a field over the csv module's size limit
            line = reader.line_num
            yield Rejection(source, location, f"broken CSV: {exc}")
            continue
        line = reader.line_num
        if None in row:
            yield Rejection(source, location, "more values than header columns")
            continue
        data = {name: value for name, value in row.items() if value not in (None, "")}
        try:
            yield parse_record(data, received_at=received_at)
        except RecordInvalid as exc:
            yield Rejection(source, location, str(exc))

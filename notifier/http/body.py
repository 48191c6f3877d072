"""HTTP input and output of the webhook: bounded bodies, strict JSON, problem answers.

Everything here turns what a client sent into records or into an HttpProblem naming what
is wrong; nothing a client can send gets past as an unexpected exception (a 500).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from notifier.core.future_dated import SENDER_CLOCK_HINT, describe_skew
from notifier.core.models import Record
from notifier.core.records import Rejection
from notifier.core.redact import mask_email
from notifier.engine import IngestReport

MAX_JSON_DEPTH = 32  # a batch of records with structured extras needs a handful
MAX_RECORDS = 5000  # per request
_EMAIL_LIKE = re.compile(r"[^\s'\"<>(),;:]+@[^\s'\"<>(),;:]+")


class IngestAccepted(BaseModel):
    """The request's records are durably stored."""

    accepted: int = Field(description="records stored (including stale ones)")
    duplicates: int = Field(
        description="redeliveries of records already taken: kept for audit, changing nothing"
    )
    stale: int = Field(description="stored, but older than what is known: fire nothing")
    # Only present when some were: the usual answer stays the three counts.
    future_dated: int | None = Field(
        default=None,
        description="stored, but dated later than received by more than the tolerance:"
        " taken as received now (check the sender's clock); present only when some were",
    )
    note: str | None = Field(default=None, description="why future_dated records were re-timed")


class RecordError(BaseModel):
    index: int = Field(description="position of the record in the request (0-based)")
    reason: str


class Problem(BaseModel):
    """Why the request was refused; `errors` lists every bad record."""

    detail: str
    errors: list[RecordError] = Field(default_factory=list)


class Health(BaseModel):
    status: str
    detail: str | None = None


class HttpProblem(Exception):
    """An answer other than success, raised anywhere in a request and rendered once."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: Sequence[RecordError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers

    def response(self) -> JSONResponse:
        body = Problem(detail=self.detail, errors=self.errors)
        return JSONResponse(body.model_dump(), status_code=self.status, headers=self.headers)


# --- reading requests --------------------------------------------------------------------


def redact(text: str) -> str:
    """Mask anything address-like, for logs (responses go back to the sender unmasked)."""
    return _EMAIL_LIKE.sub(lambda m: mask_email(m.group(0)), text)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def is_json(media: str) -> bool:
    return media == "application/json" or (media.startswith("application/") and "+json" in media)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes `limit` bytes (never buffered whole)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HttpProblem(413, f"body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HttpProblem(413, f"body is over the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise HttpProblem(400, "the client went away before sending the whole body") from None
    return b"".join(chunks)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Built once: json.loads with any option builds a new decoder per call.
_JSON = json.JSONDecoder(parse_constant=_no_constants)


def decode_json(body: bytes) -> Any:
    """Strict UTF-8 JSON; every way it can be broken is a 422 naming the problem."""
    return decode_json_text(body)[0]


def decode_json_text(body: bytes) -> tuple[Any, str]:
    """decode_json's value, and the text it was read from (a record's audit copy)."""
    text = json_text(body)
    return parse_json_text(text), text.strip()


def json_text(body: bytes) -> str:
    """The body as text, not yet parsed: UTF-8 (a leading BOM dropped), and not blank."""
    try:
        text = body.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpProblem(422, f"body is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise HttpProblem(422, "body is empty: expected JSON")
    return text


def parse_json_text(text: str) -> Any:
    """Strict JSON (json_text's): every way it can be broken is a 422 naming the problem."""
    try:
        value = _JSON.decode(text)
    except RecursionError:
        raise HttpProblem(422, f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, and numbers too long to convert
        raise HttpProblem(422, f"broken JSON: {exc}") from None
    if too_deep(value, MAX_JSON_DEPTH):
        raise HttpProblem(422, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def too_deep(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than `limit` (checked without recursion).

    Unknown fields are stored and later decoded by the worker and templates, far from
    here: a body that only just fit the decoder's recursion limit must not reach them.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def records_or_problem(items: Sequence[Record | Rejection]) -> list[Record]:
    """All the records, or a 422 listing every bad one (so the request stores nothing)."""
    if len(items) > MAX_RECORDS:
        # One request is one transaction; past this, split the batch (database parameter
        # limits, and one sender holding the commit for long).
        raise HttpProblem(413, f"{len(items)} records: at most {MAX_RECORDS} per request")
    errors = [
        RecordError(index=index, reason=item.reason)
        for index, item in enumerate(items)
        if isinstance(item, Rejection)
    ]
    if errors:
        raise HttpProblem(
            422,
            f"{len(errors)} of {len(items)} record(s) rejected; nothing of this request was stored",
            errors=errors,
        )
    return [item for item in items if isinstance(item, Record)]


async def postback_body(request: Request, limit: int) -> list[tuple[str, Any]]:
    """A POST postback's fields: a form body, a JSON object of scalars, or nothing."""
    media = media_type(request)
    body = await read_body(request, limit)
    if not body.strip():
        return []
    if media == "application/x-www-form-urlencoded":
        try:
            text = body.decode("utf-8")
            return parse_qsl(text, keep_blank_values=True, max_num_fields=1000, errors="strict")
        except (UnicodeDecodeError, ValueError) as exc:
            raise HttpProblem(422, f"broken form body: {exc}") from None
    if is_json(media):
        value = decode_json(body)
        if not isinstance(value, dict):
            raise HttpProblem(422, "a JSON postback body must be one object")
        return [(str(name), item) for name, item in value.items()]
    raise HttpProblem(
        415, f"content type must be application/x-www-form-urlencoded or JSON, not {media!r}"
    )


def accepted(report: IngestReport, *, status: int) -> Response:
    """The success answer (IngestAccepted), serialised directly: this is the hot path."""
    body = b'{"accepted":%d,"duplicates":%d,"stale":%d}' % (
        report.accepted,
        report.duplicates,
        report.stale,
    )
    if report.future_dated:
        largest = max(counted.largest for counted in report.future_dated.values())
        note = (
            f"occurred_at is up to {describe_skew(largest)} later than the time received:"
            f" taken as received now; {SENDER_CLOCK_HINT}"
        )
        extra = {"future_dated": report.future_dated_count, "note": note}
        body = body[:-1] + b"," + json.dumps(extra)[1:].encode()
    return Response(body, status_code=status, media_type="application/json")

"""The HTTP app of `notifier serve`: webhook and postback ingestion, health and metrics.

Every request is all or nothing: its records are parsed first, and only a request whose
every record is valid is ingested — in one store transaction (shared with concurrent
requests: group commit), answered 202 once that transaction has committed. The delivery
worker runs in the same process and is woken as soon as a request created notices, so an
idle server sends within milliseconds.

Nothing a client sends can make this app answer 500: bodies are read with a byte limit,
decoded strictly and parsed defensively; store trouble is a 503 the sender can retry.
"""

from __future__ import annotations

import asyncio
import codecs
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notifier.engine import Engine, IngestReport
from notifier.errors import ConfigError, StoreError
from notifier.group_commit import GroupCommitter
from notifier.metrics import CONTENT_TYPE, Metrics
from notifier.models import NoticeStatus, Record
from notifier.postbacks import TOKEN_HEADER, TOKEN_PARAM, PostbackFields
from notifier.records import RecordInvalid, Rejection, parse_json_body, parse_record
from notifier.redact import mask_email
from notifier.settings import Settings
from notifier.signing import (
    MISSING_SECRET,
    SIGNATURE_HEADER,
    SignatureInvalid,
    split_secrets,
    verify,
)
from notifier.worker import DeliveryWorker

log = logging.getLogger("notifier.webhook")
http_log = logging.getLogger("notifier.http")

Hook = Callable[[], Awaitable[None]]
STORE_RETRY_AFTER = "5"
MAX_JSON_DEPTH = 32  # a batch of records with structured extras needs a handful
MAX_RECORDS = 5000  # per request
_EMAIL_LIKE = re.compile(r"[^\s'\"<>(),;:]+@[^\s'\"<>(),;:]+")


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """What the HTTP edge needs from the settings, read once."""

    secrets: tuple[str, ...]
    max_bytes: int
    postback_token: str | None
    postback_fields: PostbackFields
    insecure: bool = False  # accept unsigned requests and token-less postbacks
    shutdown_grace: float = 30.0  # seconds in-flight sends get before they are cancelled

    @classmethod
    def from_settings(cls, settings: Settings, *, insecure: bool = False) -> WebhookConfig:
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
        token = settings.postback_token.get_secret_value() if settings.postback_token else ""
        config = cls(
            secrets=split_secrets(secret),
            max_bytes=settings.webhook_max_bytes,
            postback_token=token.strip() or None,
            postback_fields=PostbackFields.from_settings(settings.postback_fields),
            insecure=insecure,
        )
        if not config.secrets and not insecure:
            raise ConfigError(MISSING_SECRET)
        return config


# --- HTTP bodies (documentation and responses) ---------------------------------------------


class IngestAccepted(BaseModel):
    """The request's records are durably stored."""

    accepted: int = Field(description="records stored (including stale ones)")
    duplicates: int = Field(description="records already received before: ignored")
    stale: int = Field(description="stored, but older than what is known: fire nothing")


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


_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One status change (README: Records); Konnektive spellings accepted too.",
    "required": ["order_id", "fulfillment_id", "status"],
    "properties": {
        "order_id": {"type": "string"},
        "fulfillment_id": {"type": "string"},
        "status": {"type": "string", "example": "Pending Shipment"},
        "occurred_at": {"type": "string", "format": "date-time"},
        "event_id": {"type": "string"},
        "email": {"type": "string", "format": "email"},
        "first_name": {"type": "string"},
        "last_name": {"type": "string"},
        "tracking_number": {"type": "string"},
        "carrier": {"type": "string"},
        "ship_method": {"type": "string"},
        "shipped_at": {"type": "string"},
        "delivered_at": {"type": "string"},
        "campaign_id": {"type": "string"},
        "order_fulfillment_ids": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": True,
}
_STATUS_CHANGES_BODY: dict[str, Any] = {
    # Documented here rather than as a FastAPI Header parameter: the handler reads the raw
    # header itself, and skipping parameter validation is measurable on this hot path.
    "parameters": [
        {
            "name": SIGNATURE_HEADER,
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, '<t>.' + body)>;"
            " required unless the server runs --insecure",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _RECORD_SCHEMA,
                        {"type": "array", "items": _RECORD_SCHEMA},
                        {
                            "type": "object",
                            "required": ["records"],
                            "properties": {"records": {"type": "array", "items": _RECORD_SCHEMA}},
                            "additionalProperties": False,
                        },
                    ]
                }
            }
        },
    },
}
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing, malformed, wrong or expired credentials"},
    413: {"model": Problem, "description": "body larger than NOTIFIER_WEBHOOK_MAX_BYTES"},
    415: {"model": Problem, "description": "not a JSON (or form) body"},
    422: {"model": Problem, "description": "broken JSON or bad records: nothing was stored"},
    503: {"model": Problem, "description": "the store is unavailable: retry later"},
}


# Module level: FastAPI resolves annotations by name, so they cannot live in create_app.
TokenQuery = Annotated[
    str | None, Query(alias=TOKEN_PARAM, description="the NOTIFIER_POSTBACK_TOKEN")
]
TokenHeader = Annotated[
    str | None, Header(alias=TOKEN_HEADER, description="the token, instead of ?token=")
]


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


# --- request helpers ------------------------------------------------------------------------


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


def decode_json(body: bytes) -> Any:
    """Strict UTF-8 JSON; every way it can be broken is a 422 naming the problem."""
    try:
        text = body.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpProblem(422, f"body is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise HttpProblem(422, "body is empty: expected JSON")
    try:
        value = json.loads(text, parse_constant=_no_constants)
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


def release_own_claims(engine: Engine) -> int:
    """Give back notices this process still holds `sending` (sends cut off at shutdown)."""
    held = [
        notice.key
        for notice in engine.store.notices(status=NoticeStatus.SENDING)
        if notice.claim_token == engine.worker_id
    ]
    return engine.store.release(held, token=engine.worker_id, now=engine.clock()) if held else 0


async def stop_worker(worker: DeliveryWorker, engine: Engine, grace: float) -> None:
    """Finish in-flight sends (up to `grace` seconds), then release any claim still held."""
    try:
        await asyncio.wait_for(worker.stop(), timeout=grace)
    except TimeoutError:
        log.error("in-flight sends did not finish within %.0f s: cancelled", grace)
    try:
        released = await asyncio.to_thread(release_own_claims, engine)
    except StoreError:
        log.exception("could not release claims; their leases will expire instead")
        return
    if released:
        log.warning("released %d claimed notice(s): due again for the next worker", released)


# --- middleware -----------------------------------------------------------------------------


class RequestLog:
    """One log line and two metrics per request; never the query string (tokens, addresses)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.request(route, status, seconds)
            http_log.info(
                "%s %s %d %.1f ms", scope["method"], scope["path"], status, seconds * 1000
            )


# --- the app --------------------------------------------------------------------------------


def create_app(
    *,
    settings: Settings,
    engine: Engine,
    worker: DeliveryWorker | None = None,
    routers: Sequence[APIRouter] = (),
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    metrics: Metrics | None = None,
    insecure: bool = False,
    wall_clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The app: ingestion endpoints, /healthz, /metrics, plus `routers` (e.g. /preview).

    The lifespan runs `on_startup` hooks, starts `worker`; at shutdown it runs `on_shutdown`
    hooks (in reverse), lets the worker finish its in-flight sends and releases any claim.
    """
    config = WebhookConfig.from_settings(settings, insecure=insecure)
    if metrics is None:
        metrics = engine.observer if isinstance(engine.observer, Metrics) else Metrics()
    metrics.watch_store(engine.store, engine.clock)
    # Concurrent requests share a transaction (group commit); the worker wakes on new notices.
    committer = GroupCommitter(engine, on_created=worker.wake if worker is not None else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup:
            await hook()
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            for hook in reversed(on_shutdown):
                try:
                    await hook()
                except Exception:  # the worker must still stop cleanly
                    log.exception("shutdown hook %r failed", hook)
            if worker is not None:
                await stop_worker(worker, engine, config.shutdown_grace)
            committer.close()

    app = FastAPI(
        title="notifier",
        summary="Fulfillment status changes in; each customer shipping email out exactly once.",
        version="1",
        lifespan=lifespan,
    )
    app.add_middleware(RequestLog, metrics=metrics)
    app.state.committer = committer

    @app.exception_handler(HttpProblem)
    async def _problem(request: Request, exc: HttpProblem) -> JSONResponse:
        if exc.errors:
            shown = "; ".join(f"#{e.index}: {redact(e.reason)}" for e in exc.errors[:5])
            log.info("%s %s refused: %s (%s)", request.method, request.url.path, exc.detail, shown)
        else:
            log.info("%s %s refused: %d %s", request.method, request.url.path, exc.status, exc)
        return exc.response()

    async def ingest(records: list[Record]) -> IngestReport:
        try:
            return await committer.ingest(records)
        except StoreError as exc:
            log.error("ingest failed: %s", exc)
            raise HttpProblem(
                503,
                "the store is unavailable; nothing was stored, retry later",
                headers={"Retry-After": STORE_RETRY_AFTER},
            ) from None

    def reject(count: int) -> None:
        metrics.rejected(count)

    @app.post(
        "/v1/status-changes",
        status_code=202,
        response_model=IngestAccepted,
        responses=_PROBLEMS,
        openapi_extra=_STATUS_CHANGES_BODY,
        summary="Ingest status changes (signed)",
        tags=["ingestion"],
    )
    async def status_changes(request: Request) -> Response:
        """One record, an array, or `{"records": [...]}`: all stored, or none."""
        signature = request.headers.get(SIGNATURE_HEADER)
        if config.secrets and not signature:
            raise HttpProblem(401, f"missing {SIGNATURE_HEADER} header")
        media = media_type(request)
        if not is_json(media):
            raise HttpProblem(415, f"content type must be application/json, not {media!r}")
        body = await read_body(request, config.max_bytes)
        if config.secrets:
            try:
                verify(signature, body, config.secrets, now=wall_clock())
            except SignatureInvalid as exc:
                raise HttpProblem(401, str(exc)) from None
        try:
            value = decode_json(body)
        except HttpProblem:
            reject(1)
            raise
        items = list(parse_json_body(value, source="request", received_at=datetime.now(UTC)))
        try:
            records = records_or_problem(items)
        except HttpProblem as problem:
            reject(len(problem.errors))
            raise
        return accepted(await ingest(records), status=202)

    async def postback(request: Request, token: str | None, header_token: str | None) -> Response:
        params: list[tuple[str, Any]] = list(request.query_params.multi_items())
        if request.method == "POST":
            params += await postback_body(request, config.max_bytes)
        given = header_token or token or next((v for k, v in params if k == TOKEN_PARAM), None)
        if config.postback_token is not None:
            if not isinstance(given, str) or not _same(given, config.postback_token):
                raise HttpProblem(401, "missing or wrong postback token")
        elif not config.insecure:
            raise HttpProblem(401, "postbacks are off: set NOTIFIER_POSTBACK_TOKEN")
        try:
            data = config.postback_fields.record_data(params)
            record = parse_record(data, received_at=datetime.now(UTC))
        except RecordInvalid as exc:
            reject(1)
            raise HttpProblem(
                422,
                "the record was rejected; nothing was stored",
                errors=[RecordError(index=0, reason=str(exc))],
            ) from None
        return accepted(await ingest([record]), status=200)

    postback_doc: dict[str, Any] = {
        "response_model": IngestAccepted,
        "responses": _PROBLEMS,
        "tags": ["ingestion"],
    }

    @app.get("/v1/postbacks/konnektive", summary="Konnektive postback (GET)", **postback_doc)
    async def konnektive_get(
        request: Request, token: TokenQuery = None, header_token: TokenHeader = None
    ) -> Any:
        """An Export Profile's postback: the record's fields as query parameters."""
        return await postback(request, token, header_token)

    @app.post("/v1/postbacks/konnektive", summary="Konnektive postback (POST)", **postback_doc)
    async def konnektive_post(
        request: Request, token: TokenQuery = None, header_token: TokenHeader = None
    ) -> Any:
        """Fields as query parameters, a form body, or a JSON object."""
        return await postback(request, token, header_token)

    @app.get(
        "/healthz",
        response_model=Health,
        response_model_exclude_none=True,
        responses={503: {"model": Health}},
        tags=["operations"],
    )
    async def healthz() -> Any:
        """200 when the store answers; 503 when it does not."""
        try:
            await asyncio.to_thread(engine.store.next_due_at)
        except StoreError as exc:
            return JSONResponse(
                Health(status="unavailable", detail=str(exc)).model_dump(), status_code=503
            )
        return Health(status="ok")

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}}},
        tags=["operations"],
    )
    def prometheus_metrics() -> Response:
        """Prometheus text exposition."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    for router in routers:
        app.include_router(router)
    return app


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
    return Response(body, status_code=status, media_type="application/json")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))

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
import hmac
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notifier.core.future_dated import POSTBACK, WEBHOOK, Source
from notifier.core.models import Record
from notifier.core.record_lines import fast_record
from notifier.core.records import RecordInvalid, Rejection, parse_json_body, parse_record
from notifier.engine import Engine, IngestReport
from notifier.engine.group_commit import GroupCommitter
from notifier.errors import ConfigError, StoreError
from notifier.http.body import (
    Health,
    HttpProblem,
    IngestAccepted,
    Problem,
    RecordError,
    accepted,
    is_json,
    json_text,
    media_type,
    parse_json_text,
    postback_body,
    read_body,
    records_or_problem,
    redact,
)
from notifier.http.metrics import CONTENT_TYPE, Metrics
from notifier.http.signing import (
    MISSING_SECRET,
    SIGNATURE_HEADER,
    SignatureInvalid,
    split_secrets,
    verify,
)
from notifier.settings import Settings
from notifier.sources.postbacks import TOKEN_HEADER, TOKEN_PARAM, PostbackFields

log = logging.getLogger("notifier.http.webhook")
http_log = logging.getLogger("notifier.http")

Hook = Callable[[], Awaitable[None]]
STORE_RETRY_AFTER = "5"
# What JSON itself counts as whitespace around a value (str.strip() takes more).
_JSON_WHITESPACE = " \t\r\n"
# Records per group-commit transaction (a request is never split, so one may exceed it).
MAX_RECORDS_PER_COMMIT = 2000
# The largest group written on the event loop's own thread (SQLite, lock free): about 10 ms
# of ingest at ~10,000 records/s. Larger groups go to the commit thread, so one large request
# never holds up the loop (and every other request on it) for its whole transaction.
MAX_RECORDS_INLINE = 100


# FastAPI's own OpenTelemetry hooks, off where this FastAPI has them (0.16x on): notifier
# exports its own /metrics and sets up no OpenTelemetry, and the hooks' per-request check
# for configured providers measured ~15% of the app's CPU for a one-record request.
_NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request's records and the entry point they came in by (for the skew count)."""

    source: Source
    records: Sequence[Record]


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """What the HTTP edge needs from the settings, read once."""

    secrets: tuple[str, ...]
    max_bytes: int
    postback_token: str | None
    postback_fields: PostbackFields
    insecure: bool = False  # accept unsigned requests and token-less postbacks

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


# --- OpenAPI documentation --------------------------------------------------------------------


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


# --- middleware -----------------------------------------------------------------------------


STATUS_CHANGES_PATH = "/v1/status-changes"


class _HotRoute(Route):
    """A Starlette route that names itself in the scope as FastAPI's do (RequestLog's
    metrics label it by its path)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


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
    wake: Callable[[], None] | None = None,
    routers: Sequence[APIRouter] = (),
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    metrics: Metrics | None = None,
    insecure: bool = False,
) -> FastAPI:
    """The app: ingestion endpoints, /healthz, /metrics, plus `routers` (e.g. /preview).

    `wake` is called when a request created notices (the delivery worker's wake-up). The
    lifespan runs `on_startup` hooks, and `on_shutdown` hooks in reverse at shutdown (an
    in-process host, e.g. a test client, starts its worker there; `notifier serve` runs it
    under notifier.processes.lifecycle instead).
    """
    config = WebhookConfig.from_settings(settings, insecure=insecure)
    if metrics is None:
        metrics = engine.observer if isinstance(engine.observer, Metrics) else Metrics()
    metrics.watch_store(engine.store, engine.clock)
    # Concurrent requests share a transaction (group commit); the worker wakes on new notices.
    committer: GroupCommitter[Arrival, IngestReport] = GroupCommitter(
        lambda arrivals: engine.ingest_groups(
            [a.records for a in arrivals], sources=[a.source for a in arrivals]
        )[1],
        max_size=MAX_RECORDS_PER_COMMIT,
        size=lambda arrival: len(arrival.records),
        own_thread="notifier-commit",
        # ingest_groups writes one transaction, as an inline writer requires.
        try_inline=engine.inline_writer,
        inline_max=MAX_RECORDS_INLINE,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup:
            await hook()
        try:
            yield
        finally:
            for hook in reversed(on_shutdown):
                try:
                    await hook()
                except Exception:  # the others must still run
                    log.exception("shutdown hook %r failed", hook)
            committer.close()

    app = FastAPI(
        title="notifier",
        summary="Fulfillment status changes in; each customer shipping email out exactly once.",
        version="1",
        lifespan=lifespan,
        **_NO_TELEMETRY,
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

    async def ingest(records: list[Record], source: Source) -> IngestReport:
        try:
            report = await committer.submit(Arrival(source, records))
        except StoreError as exc:
            log.error("ingest failed: %s", exc)
            raise HttpProblem(
                503,
                "the store is unavailable; nothing was stored, retry later",
                headers={"Retry-After": STORE_RETRY_AFTER},
            ) from None
        if report.notices_created and wake is not None:
            wake()
        return report

    async def reject(source: str, refused: Sequence[tuple[str, str]]) -> None:
        """Count the refused records and note their where and why for the console."""
        metrics.rejected(len(refused))
        rejections = [Rejection(source, where, why) for where, why in refused]
        await run_in_threadpool(engine.note_rejections, rejections)

    @app.post(
        STATUS_CHANGES_PATH,
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
                verify(signature, body, config.secrets, now=engine.clock().timestamp())
            except SignatureInvalid as exc:
                raise HttpProblem(401, str(exc)) from None
        try:
            text = json_text(body)
        except HttpProblem as problem:
            await reject(WEBHOOK.name, [("body", str(problem))])
            raise
        received = engine.clock()
        audit = text.strip()
        # One plain record, the usual body, is decoded straight into its Record (the JSONL
        # fast path, which only accepts what the general parser would, alike); only if
        # what surrounds it is JSON's own whitespace, which the general parser skips too.
        fast = None
        if text.strip(_JSON_WHITESPACE) == audit:
            fast = fast_record(audit, received_at=received)
        if fast is not None:
            return accepted(await ingest([fast], WEBHOOK), status=202)
        try:
            value = parse_json_text(text)
        except HttpProblem as problem:
            await reject(WEBHOOK.name, [("body", str(problem))])
            raise
        items = list(parse_json_body(value, source="request", received_at=received, text=audit))
        try:
            records = records_or_problem(items)
        except HttpProblem as problem:
            await reject(WEBHOOK.name, [(f"#{e.index}", e.reason) for e in problem.errors])
            raise
        return accepted(await ingest(records, WEBHOOK), status=202)

    # Served by a plain Starlette route ahead of its FastAPI twin, which stays for the
    # OpenAPI document: the endpoint takes only the request, and FastAPI's per-request
    # dependency solving and wrapping around it cost about a fifth of the app's CPU for a
    # one-record request (bench/webhook.py).
    app.router.routes.insert(0, _HotRoute(STATUS_CHANGES_PATH, status_changes, methods=["POST"]))

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
            record = parse_record(data, received_at=engine.clock())
        except RecordInvalid as exc:
            await reject(POSTBACK.name, [("record", str(exc))])
            raise HttpProblem(
                422,
                "the record was rejected; nothing was stored",
                errors=[RecordError(index=0, reason=str(exc))],
            ) from None
        return accepted(await ingest([record], POSTBACK), status=200)

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


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))

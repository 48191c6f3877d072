"""The notices API under /v1/notices: search, one notice's story, its email, actions.

What the operator console's pages use, and what operators script against: the same
queries (notifier.store.queries) and the same actions (notifier.engine.operator) as the
CLI. Mounted by `notifier serve` only when NOTIFIER_CONSOLE_TOKEN is set (404 otherwise);
every request needs a console token (notifier.http.operator_auth): the viewer token reads,
the full one also acts. Never a 500: a store that does not answer is a 503 to retry.

Keys contain `:` and `#` (a resend is `<key>#resend-1`) and may contain `/`: send them
percent-encoded in the path (`#` as %23).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from notifier.core.feedback import VERDICT_RANK
from notifier.core.models import Notice, NoticeStatus
from notifier.core.timeline import TimelineEntry
from notifier.engine import Engine, operator
from notifier.engine.rerender import CannotRerender, rerender
from notifier.errors import ConfigError, NotifierError, StoreError
from notifier.http.body import HttpProblem, Problem
from notifier.http.operator_auth import Operator, OperatorTokens
from notifier.settings import Settings
from notifier.store.queries import MAX_PAGE, ConsoleQueries, NoticePage, NoticeQuery
from notifier.store.sql import SqlStore

__all__ = ["RENDERED_HEADER", "notices_api_from_settings", "notices_router"]

log = logging.getLogger("notifier.http.notices_api")

# On a message re-rendered from today's templates because no copy of the sent one is kept.
RENDERED_HEADER = "X-Notifier-Rendered"
_RENDERED_NOTE = "re-rendered from today's templates: no copy of the sent message is kept"
T = TypeVar("T")
# The providers' verdicts, weakest first: a stronger one replaces a weaker (core.feedback).
_VERDICTS = ", ".join(kind.verdict for kind in sorted(VERDICT_RANK, key=VERDICT_RANK.__getitem__))


# --- response models ----------------------------------------------------------------------


class NoticeOut(BaseModel):
    """A notice as the ledger holds it."""

    key: str
    rule: str
    scope: str
    order_id: str
    fulfillment_id: str | None
    fulfillment_ids: list[str]
    recipient: str | None
    campaign_id: str | None
    status: NoticeStatus
    reason: str | None = Field(description="why it is in this status (failed, cancelled, retry)")
    attempts: int
    ambiguous_attempts: int = Field(description="sends that may have arrived (connection lost)")
    message_id: str | None
    created_at: datetime
    due_at: datetime
    sent_at: datetime | None
    feedback: str | None = Field(
        description="the mail providers' verdict on the sent message, the strongest they have"
        f" reported so far (weakest first: {_VERDICTS}); null until one reports"
        " (a provider webhook, an imported bounce, the bounce mailbox)"
    )

    @classmethod
    def of(cls, notice: Notice) -> NoticeOut:
        return cls(
            key=notice.key,
            rule=notice.rule_id,
            scope=notice.scope.value,
            order_id=notice.order_id,
            fulfillment_id=notice.fulfillment_id,
            fulfillment_ids=list(notice.fulfillment_ids),
            recipient=notice.recipient,
            campaign_id=notice.campaign_id,
            status=notice.status,
            reason=notice.reason,
            attempts=notice.attempts,
            ambiguous_attempts=notice.ambiguous_attempts,
            message_id=notice.message_id,
            created_at=notice.created_at,
            due_at=notice.due_at,
            sent_at=notice.sent_at,
            feedback=notice.feedback.verdict if notice.feedback is not None else None,
        )


class NoticeList(BaseModel):
    """One page of matching notices, newest first, and how many match in all."""

    notices: list[NoticeOut]
    total: int
    limit: int
    offset: int


class TimelineOut(BaseModel):
    at: datetime
    kind: str = Field(description="record | created | attempt | action | feedback")
    title: str
    detail: str | None = None
    outcome: str | None = None
    actor: str | None = Field(default=None, description="who acted (actions only)")

    @classmethod
    def of(cls, entry: TimelineEntry) -> TimelineOut:
        return cls(
            at=entry.at,
            kind=entry.kind,
            title=entry.title,
            detail=entry.detail,
            outcome=entry.outcome,
            actor=entry.actor,
        )


class NoticeDetail(BaseModel):
    """A notice, why it exists (its trigger record) and everything that happened to it."""

    notice: NoticeOut
    trigger_record: dict[str, Any]
    timeline: list[TimelineOut]
    copy_kept: bool = Field(description="the exact sent message is kept (GET .../message)")


class ActionDone(BaseModel):
    """What an action did."""

    key: str = Field(description="the notice acted on (a resend: the new notice's key)")
    status: NoticeStatus
    detail: str


class SuppressionOut(BaseModel):
    address: str
    reason: str
    since: datetime


class SuppressionIn(BaseModel):
    address: str = Field(min_length=3, max_length=255, pattern=r"^[^\s@<>]+@[^\s@<>]+$")
    reason: str = Field(default="added by the operator", min_length=1, max_length=500)
    notice_key: str | None = Field(
        default=None, description="the notice whose page this came from (its timeline shows it)"
    )


class SuppressionDone(BaseModel):
    address: str
    suppressed: bool
    detail: str


class OutputFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no console token, or a wrong one"},
    503: {"model": Problem, "description": "the store is unavailable: retry later"},
}
_SEARCH: dict[int | str, dict[str, Any]] = {
    **_AUTH,
    400: {"model": Problem, "description": "a date without a time zone"},
    200: {"content": {"text/csv": {}}},
}
_ACT: dict[int | str, dict[str, Any]] = {
    **_AUTH,
    403: {"model": Problem, "description": "the viewer token is read-only, or no CSRF token"},
    404: {"model": Problem, "description": "no such notice"},
    409: {"model": Problem, "description": "the notice is not in a state this action allows"},
}
_CSV_COLUMNS = (
    "key",
    "status",
    "rule",
    "order_id",
    "fulfillment_id",
    "recipient",
    "campaign_id",
    "attempts",
    "created_at",
    "sent_at",
    "reason",
)


# --- the router -----------------------------------------------------------------------------


def notices_router(
    *,
    engine: Engine,
    queries: ConsoleQueries,
    tokens: OperatorTokens,
    wake: Callable[[], None] | None = None,
) -> APIRouter:
    """The /v1/notices and /v1/suppressions endpoints over `queries` and `engine`.

    `wake` tells the delivery worker that notices were made due (retry, resend)."""
    reader = tokens.reader()
    actor = tokens.actor()
    router = APIRouter(tags=["notices"])

    def woken() -> None:
        if wake is not None:
            wake()

    async def search(
        q: str | None,
        status: NoticeStatus | None,
        rule: str | None,
        campaign: str | None,
        created_from: datetime | None,
        created_to: datetime | None,
        limit: int,
        offset: int,
    ) -> NoticePage:
        query = NoticeQuery(
            q=q,
            status=status,
            rule_id=rule,
            campaign_id=campaign,
            created_from=_aware(created_from, "from"),
            created_to=_aware(created_to, "to"),
            limit=limit,
            offset=offset,
        )
        return await _store(queries.search_notices, query)

    @router.get(
        "/v1/notices",
        response_model=NoticeList,
        responses=_SEARCH,
        summary="Search notices",
    )
    async def list_notices(
        q: str | None = Query(
            None,
            max_length=500,
            description="order id, fulfillment id, email address, tracking number or notice"
            " key (or its beginning)",
        ),
        status: NoticeStatus | None = None,
        rule: str | None = Query(None, max_length=255),
        campaign: str | None = Query(None, max_length=255),
        created_from: datetime | None = Query(
            None, alias="from", description="created at or after"
        ),
        created_to: datetime | None = Query(None, alias="to", description="created before"),
        limit: int = Query(50, ge=1, le=MAX_PAGE),
        offset: int = Query(0, ge=0, le=10_000_000),
        output: OutputFormat = Query(OutputFormat.JSON, alias="format"),
        who: Operator = Depends(reader),
    ) -> Any:
        """Newest first; `total` counts every match. `format=csv` for a spreadsheet."""
        page = await search(q, status, rule, campaign, created_from, created_to, limit, offset)
        if output is OutputFormat.CSV:
            return _csv(page)
        return _page(page)

    @router.get(
        "/v1/notices.csv",
        response_class=Response,
        responses=_SEARCH,
        summary="Search notices, as CSV",
    )
    async def list_notices_csv(
        q: str | None = Query(None, max_length=500),
        status: NoticeStatus | None = None,
        rule: str | None = Query(None, max_length=255),
        campaign: str | None = Query(None, max_length=255),
        created_from: datetime | None = Query(None, alias="from"),
        created_to: datetime | None = Query(None, alias="to"),
        limit: int = Query(MAX_PAGE, ge=1, le=MAX_PAGE),
        offset: int = Query(0, ge=0, le=10_000_000),
        who: Operator = Depends(reader),
    ) -> Response:
        """The same search as GET /v1/notices, one notice per row."""
        page = await search(q, status, rule, campaign, created_from, created_to, limit, offset)
        return _csv(page)

    # Declared before GET /v1/notices/{key}: a key may contain "/", so that route takes
    # the rest of the path, and these must match first.
    @router.get(
        "/v1/notices/{key:path}/message",
        response_class=Response,
        responses={
            **_AUTH,
            404: {"model": Problem, "description": "no such notice, or nothing to show"},
            200: {"content": {"message/rfc822": {}}},
        },
        summary="The email as sent",
    )
    async def notice_message(key: str, who: Operator = Depends(reader)) -> Response:
        """The exact bytes sent while the copy is kept; else the email re-rendered from
        today's templates, with an `X-Notifier-Rendered` header saying so."""
        kept = await _store(queries.sent_copy, key)
        if kept is not None:
            return Response(kept, media_type="message/rfc822")
        notice = await _found(queries, key)
        rendered = await _store(_rerender, engine, notice)
        return Response(
            rendered, media_type="message/rfc822", headers={RENDERED_HEADER: _RENDERED_NOTE}
        )

    @router.post(
        "/v1/notices/{key:path}/retry",
        response_model=ActionDone,
        responses=_ACT,
        summary="Retry a failed (or waiting) notice now",
    )
    async def retry_notice(key: str, who: Operator = Depends(actor)) -> ActionDone:
        """Due now, same key and Message-ID: the same email, not a second one."""
        await _found(queries, key)
        done = await _store(
            operator.retry, engine.store, [key], actor=who.actor, now=engine.clock()
        )
        if done.problems:
            raise HttpProblem(409, done.problems[0])
        woken()
        detail = "due now; the worker sends it"
        if done.suppressed:
            detail += f" (but {done.suppressed[0][1]} is suppressed: it will be cancelled)"
        return ActionDone(key=key, status=NoticeStatus.PENDING, detail=detail)

    @router.post(
        "/v1/notices/{key:path}/resend",
        response_model=ActionDone,
        status_code=202,
        responses=_ACT,
        summary="Send a sent (or failed) notice again, as a new notice",
    )
    async def resend_notice(key: str, who: Operator = Depends(actor)) -> ActionDone:
        """A second copy to the customer, with its own key and Message-ID."""
        await _found(queries, key)
        try:
            new_key = await operator.add_resend(engine, key, actor=who.actor)
        except StoreError as exc:
            raise _unavailable(exc) from None
        except NotifierError as exc:
            raise HttpProblem(409, str(exc)) from None
        woken()
        return ActionDone(
            key=new_key, status=NoticeStatus.PENDING, detail=f"a new copy of {key}, due now"
        )

    @router.get(
        "/v1/notices/{key:path}",
        response_model=NoticeDetail,
        responses={**_AUTH, 404: {"model": Problem, "description": "no such notice"}},
        summary="One notice and its timeline",
    )
    async def notice_detail(key: str, who: Operator = Depends(reader)) -> NoticeDetail:
        """What it is, why it exists, every record, attempt and action, whether a copy is kept."""
        dossier = await _store(queries.dossier, key)
        if dossier is None:
            raise HttpProblem(404, f"no notice with key {key!r}")
        return NoticeDetail(
            notice=NoticeOut.of(dossier.notice),
            trigger_record=dict(dossier.notice.record),
            timeline=[TimelineOut.of(entry) for entry in dossier.timeline],
            copy_kept=dossier.copy_kept,
        )

    # --- suppressions -----------------------------------------------------------------------

    @router.get(
        "/v1/suppressions",
        response_model=list[SuppressionOut],
        responses=_AUTH,
        tags=["suppressions"],
        summary="Every suppressed address",
    )
    async def list_suppressions(who: Operator = Depends(reader)) -> list[SuppressionOut]:
        rows = await _store(engine.store.suppressions)
        return [SuppressionOut(address=a, reason=r, since=s) for a, r, s in rows]

    @router.post(
        "/v1/suppressions",
        response_model=SuppressionDone,
        responses={**_ACT, 400: {"model": Problem, "description": "the body is not JSON"}},
        tags=["suppressions"],
        summary="Never mail an address",
    )
    async def add_suppression(
        body: SuppressionIn, who: Operator = Depends(actor)
    ) -> SuppressionDone:
        """Its waiting notices are cancelled when they come due, with the reason."""
        done = await _store(
            operator.suppress,
            engine.store,
            [body.address],
            reason=body.reason,
            actor=who.actor,
            now=engine.clock(),
            key=body.notice_key,
        )
        if done.added:
            return SuppressionDone(address=body.address, suppressed=True, detail="suppressed")
        why = next(iter(done.already.values()), "")
        return SuppressionDone(
            address=body.address, suppressed=True, detail=f"already suppressed: {why}"
        )

    @router.delete(
        "/v1/suppressions/{address}",
        response_model=SuppressionDone,
        responses={**_ACT, 404: {"model": Problem, "description": "the address is not suppressed"}},
        tags=["suppressions"],
        summary="Mail an address again",
    )
    async def remove_suppression(
        address: str,
        notice_key: str | None = Query(None, description="the notice whose page this came from"),
        who: Operator = Depends(actor),
    ) -> SuppressionDone:
        """Notices already cancelled for it stay cancelled."""
        removed = await _store(
            operator.unsuppress,
            engine.store,
            [address],
            actor=who.actor,
            now=engine.clock(),
            key=notice_key,
        )
        if not removed:
            raise HttpProblem(404, f"{address} is not suppressed")
        return SuppressionDone(address=address, suppressed=False, detail="no longer suppressed")

    return router


def notices_api_from_settings(
    engine: Engine, settings: Settings, *, wake: Callable[[], None] | None = None
) -> APIRouter | None:
    """`notifier serve`'s one line: the API when NOTIFIER_CONSOLE_TOKEN is set, else None."""
    tokens = OperatorTokens.from_settings(settings)
    if tokens is None:
        return None
    if not isinstance(engine.store, SqlStore):
        raise ConfigError("the notices API needs a SQL ledger (NOTIFIER_DATABASE_URL)")
    return notices_router(
        engine=engine, queries=ConsoleQueries(engine.store), tokens=tokens, wake=wake
    )


# --- helpers ---------------------------------------------------------------------------------


async def _store(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A ledger call off the event loop; a store that does not answer becomes a 503."""
    try:
        return await run_in_threadpool(call, *args, **kwargs)
    except StoreError as exc:
        raise _unavailable(exc) from None


def _unavailable(exc: StoreError) -> HttpProblem:
    log.error("notices API: %s", exc)
    return HttpProblem(503, "the store is unavailable; retry later", headers={"Retry-After": "5"})


async def _found(queries: ConsoleQueries, key: str) -> Notice:
    notice = await _store(queries.notice, key)
    if notice is None:
        raise HttpProblem(404, f"no notice with key {key!r}")
    return notice


def _aware(moment: datetime | None, name: str) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        raise HttpProblem(400, f"`{name}` needs a time zone (e.g. 2026-11-20T00:00:00Z)")
    return moment


def _rerender(engine: Engine, notice: Notice) -> bytes:
    """The notice's email from today's templates and the order as known now."""
    from notifier.core.mime import wire_bytes

    try:
        return wire_bytes(rerender(engine, notice))
    except CannotRerender as exc:
        raise HttpProblem(404, f"no copy is kept and {exc}") from None


def _page(page: NoticePage) -> NoticeList:
    return NoticeList(
        notices=[NoticeOut.of(n) for n in page.notices],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


def _csv(page: NoticePage) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_CSV_COLUMNS)
    for n in page.notices:
        writer.writerow(
            [
                _cell(value)
                for value in (
                    n.key,
                    n.status.value,
                    n.rule_id,
                    n.order_id,
                    n.fulfillment_id or "",
                    n.recipient or "",
                    n.campaign_id or "",
                    n.attempts,
                    n.created_at.isoformat(),
                    n.sent_at.isoformat() if n.sent_at else "",
                    n.reason or "",
                )
            ]
        )
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="notices.csv"',
            "X-Total-Count": str(page.total),
        },
    )


def _cell(value: object) -> str:
    # A cell starting with = + - @ is a formula to a spreadsheet: customer data must not be.
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text

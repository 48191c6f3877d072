"""The operator console's pages under /console: routes only.

Every page is server-rendered (notifier.http.console.render) and runs no script. Reads go
to the SQL ledger's read-side queries; actions go through notifier.engine.operator, the
code the CLI's commands run too, with the operator's actor name for the audit trail.
Off unless NOTIFIER_CONSOLE_TOKEN is set (then nothing is mounted and /console is a 404).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from notifier.core.models import NoticeStatus
from notifier.core.rules import describe_trigger
from notifier.engine import Engine
from notifier.errors import ConfigError, NotifierError, StoreError
from notifier.http.body import HttpProblem
from notifier.http.console import ledger
from notifier.http.console.access import (
    Access,
    Flash,
    Posted,
    flash_from,
    read_form,
    redirect_with,
    refusal,
    shown,
)
from notifier.http.console.email_view import ShownEmail, from_bytes, re_rendered
from notifier.http.console.overview import overview_context
from notifier.http.console.render import EMAIL_HEADERS, html_page, notice_path, secure
from notifier.http.operator_auth import COOKIE, Operator, OperatorTokens
from notifier.settings import Settings
from notifier.store.overview import read_overview
from notifier.store.queries import ConsoleQueries
from notifier.store.sql import SqlStore

__all__ = ["console_from_settings", "console_router"]

T = TypeVar("T")

_CSS = resources.files("notifier.http.console").joinpath("static/console.css").read_bytes()


def console_from_settings(
    engine: Engine, settings: Settings, *, wake: Callable[[], None] | None = None
) -> APIRouter | None:
    """`notifier serve`'s one line: the pages when NOTIFIER_CONSOLE_TOKEN is set, else None
    (and /console is a 404)."""
    tokens = OperatorTokens.from_settings(settings)
    if tokens is None:
        return None
    return console_router(engine=engine, tokens=tokens, wake=wake)


def console_router(
    *, engine: Engine, tokens: OperatorTokens, wake: Callable[[], None] | None = None
) -> APIRouter:
    """The /console pages over `engine`'s SQL ledger, for the holders of `tokens`.

    `wake` tells the delivery worker that notices became due (after a retry, a resend)."""
    store = engine.store
    if not isinstance(store, SqlStore):
        raise ConfigError("the console needs a SQL ledger (NOTIFIER_DATABASE_URL)")
    access = Access(tokens)
    queries = ConsoleQueries(store)
    router = APIRouter(include_in_schema=False)

    def page(request: Request, operator: Operator, template: str, **context: Any) -> Response:
        response = html_page(template, operator=operator, flash=flash_from(request), **context)
        return shown(response, request)

    async def reading(read: Callable[[], T]) -> T | Response:
        try:
            return await run_in_threadpool(read)
        except StoreError:
            return _unavailable()

    @router.get("/console/static/console.css")
    async def stylesheet() -> Response:
        return secure(
            Response(_CSS, media_type="text/css", headers={"Cache-Control": "max-age=300"})
        )

    @router.post("/console/login")
    async def login(request: Request) -> Response:
        try:
            form = await read_form(request)
        except HttpProblem:
            return access.login_page(request, wrong=True, target="/console")
        target = form.get("next") or "/console"
        operator = tokens.by_token(form.get("token", "").strip(), via="cookie")
        if operator is None:
            return access.login_page(request, wrong=True, target=target)
        return access.logged_in(request, operator, target)

    @router.post("/console/logout")
    async def logout(request: Request) -> Response:
        posted = await access.poster(request, act=False)
        if not isinstance(posted, Posted):
            return posted
        response = secure(RedirectResponse("/console", status_code=303))
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @router.get("/console")
    async def overview(request: Request) -> Response:
        operator = access.reader(request)
        if not isinstance(operator, Operator):
            return operator
        now = engine.clock()
        read = await reading(lambda: read_overview(store, now=now))
        if isinstance(read, Response):
            return read
        return page(
            request, operator, "overview.html", section="overview", **overview_context(read)
        )

    @router.get("/console/notices")
    async def search(request: Request) -> Response:
        operator = access.reader(request)
        if not isinstance(operator, Operator):
            return operator
        context: dict[str, Any] = {"section": "search", "statuses": _STATUSES}
        context["rules"] = sorted(engine.rules, key=lambda rule: rule.name)
        try:
            wanted = ledger.search_from(request.query_params)
        except ledger.SearchInvalid as exc:
            return page(
                request,
                operator,
                "search.html",
                status_code=400,
                params=_as_given(request),
                results=None,
                error=str(exc),
                page=1,
                pages=1,
                csv_url="",
                **context,
            )
        found = await reading(lambda: ledger.search_notices(queries, wanted))
        if isinstance(found, Response):
            return found
        params = wanted.params()
        return page(
            request,
            operator,
            "search.html",
            params=params,
            results=found,
            error=None,
            page=wanted.page,
            pages=max(1, -(-found.total // ledger.PAGE_SIZE)),
            csv_url="/v1/notices.csv?" + urlencode({k: v for k, v in params.items() if v}),
            **context,
        )

    @router.get("/console/notices/{key:path}")
    async def notice_page(request: Request, key: str) -> Response:
        operator = access.reader(request)
        if not isinstance(operator, Operator):
            return operator
        shown = await reading(lambda: _notice_view(engine, queries, key))
        if isinstance(shown, Response):
            return shown
        if shown is None:
            return _no_notice(key)
        return page(request, operator, "notice.html", section="search", **shown)

    @router.get("/console/email/{key:path}")
    async def email_html(request: Request, key: str) -> Response:
        operator = access.reader(request)
        if not isinstance(operator, Operator):
            return operator
        email = await reading(lambda: _email_of(engine, queries, key))
        if isinstance(email, Response):
            return email
        if email is None or email.html is None:
            return secure(
                Response("no HTML part", status_code=404, media_type="text/plain"), EMAIL_HEADERS
            )
        return secure(HTMLResponse(email.html), EMAIL_HEADERS)

    @router.get("/console/resend")
    async def confirm_resend(request: Request, key: str = "") -> Response:
        operator = access.reader(request)
        if not isinstance(operator, Operator):
            return operator
        if not operator.can_act:
            return _read_only()
        notice = await reading(lambda: store.notice(key) if ledger.storable(key) else None)
        if isinstance(notice, Response):
            return notice
        if notice is None:
            return _no_notice(key)
        return page(request, operator, "resend.html", section="search", notice=notice)

    @router.post("/console/actions/retry")
    async def retry(request: Request) -> Response:
        posted = await access.poster(request)
        if not isinstance(posted, Posted):
            return posted
        key = posted.form.get("key", "")
        actor = posted.operator.actor

        async def run() -> str:
            return await run_in_threadpool(ledger.retry, engine, key, actor=actor)

        return await _acted(notice_path(key), run, wake)

    @router.post("/console/actions/resend")
    async def resend(request: Request) -> Response:
        posted = await access.poster(request)
        if not isinstance(posted, Posted):
            return posted
        key = posted.form.get("key", "")
        try:
            new_key = await ledger.resend(engine, key, actor=posted.operator.actor)
        except StoreError:
            return _unavailable()
        except NotifierError as exc:
            return redirect_with(notice_path(key), Flash(str(exc), "error"))
        if wake is not None:
            wake()
        return redirect_with(
            notice_path(new_key), Flash(f"A new copy of {key} was made as {new_key}.")
        )

    @router.post("/console/actions/suppress")
    async def suppress(request: Request) -> Response:
        posted = await access.poster(request)
        if not isinstance(posted, Posted):
            return posted
        form = ledger.address_form(posted.form)
        if not _ADDRESS.fullmatch(form.address):
            return redirect_with(
                form.back, Flash(f"not an email address: {form.address!r}", "error")
            )
        reason = posted.form.get("reason", "").strip() or "added by the operator"

        async def run() -> str:
            return await run_in_threadpool(
                ledger.suppress,
                engine,
                form.address,
                reason=reason,
                actor=posted.operator.actor,
                key=form.key,
            )

        return await _acted(form.back, run, None)

    @router.post("/console/actions/unsuppress")
    async def unsuppress(request: Request) -> Response:
        posted = await access.poster(request)
        if not isinstance(posted, Posted):
            return posted
        form = ledger.address_form(posted.form)

        async def run() -> str:
            return await run_in_threadpool(
                ledger.unsuppress, engine, form.address, actor=posted.operator.actor, key=form.key
            )

        return await _acted(form.back, run, None)

    @router.get("/console/suppressions")
    async def suppressions(request: Request) -> Response:
        operator = access.reader(request)
        if not isinstance(operator, Operator):
            return operator
        rows = await reading(store.suppressions)
        if isinstance(rows, Response):
            return rows
        return page(request, operator, "suppressions.html", section="suppressions", rows=rows)

    return router


_STATUSES = [status.value for status in NoticeStatus]
# As the CLI's `suppress add` accepts them: one address, no spaces, brackets or controls.
_ADDRESS = re.compile(r"[^\s@\x00-\x1f\x7f<>]+@[^\s@\x00-\x1f\x7f<>]+")


async def _acted(
    back: str, act: Callable[[], Awaitable[str]], wake: Callable[[], None] | None
) -> Response:
    """Run an action and redirect back with its outcome (POST-redirect-GET)."""
    try:
        said = await act()
    except StoreError:
        return _unavailable()
    except NotifierError as exc:
        return redirect_with(back, Flash(str(exc), "error"))
    if wake is not None:
        wake()
    return redirect_with(back, Flash(said))


def _as_given(request: Request) -> dict[str, str]:
    wanted = ("q", "status", "rule", "campaign", "from", "to")
    return {name: request.query_params.get(name, "") for name in wanted}


def _no_notice(key: str) -> Response:
    return refusal(404, "No such notice", f"There is no notice with the key {key!r}.")


def _read_only() -> Response:
    return refusal(
        403,
        "Read-only access",
        "The viewer token can look, not act: retries, resends and suppressions need the"
        " console token.",
    )


def _unavailable() -> Response:
    return refusal(
        503,
        "The ledger is unavailable",
        "The store did not answer; nothing was changed. Try again in a moment.",
    )


def _email_of(engine: Engine, queries: ConsoleQueries, key: str) -> ShownEmail | None:
    notice = queries.notice(key) if ledger.storable(key) else None
    if notice is None:
        return None
    raw = queries.sent_copy(key)
    return from_bytes(raw) if raw is not None else re_rendered(engine, notice)


def _notice_view(engine: Engine, queries: ConsoleQueries, key: str) -> dict[str, Any] | None:
    dossier = queries.dossier(key) if ledger.storable(key) else None
    if dossier is None:
        return None
    notice = dossier.notice
    rule = engine.rules_by_id.get(notice.rule_id)
    suppressed = queries.store.suppressed([notice.recipient]) if notice.recipient else {}
    return {
        "notice": notice,
        "rule": rule,
        "trigger_said": describe_trigger(rule) if rule is not None else None,
        "trigger": _record_fields(notice.record),
        "suppressed": next(iter(suppressed.values()), None),
        "timeline": dossier.timeline,
        "email": _email_of(engine, queries, key),
        "html_src": "/console/email/" + quote(key, safe=""),
    }


def _record_fields(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The trigger record's fields, flat, as text (extras as `extra.NAME`)."""
    fields: list[tuple[str, str]] = []
    for name, value in record.items():
        if name == "extra" and isinstance(value, Mapping):
            fields.extend((f"extra.{k}", _text(v)) for k, v in value.items())
        else:
            fields.append((name, _text(value)))
    return fields


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)

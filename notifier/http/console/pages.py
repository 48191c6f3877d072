"""The operator console's pages under /console: routes only.

Every page is server-rendered (notifier.http.console.render) and runs no script. Reads go
to the SQL ledger's read-side queries; actions go through notifier.engine.operator, the
code the CLI's commands run too, with the operator's actor name for the audit trail.
Off unless NOTIFIER_CONSOLE_TOKEN is set (then nothing is mounted and /console is a 404).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from notifier.engine import Engine
from notifier.errors import StoreError
from notifier.http.body import HttpProblem
from notifier.http.console.access import Access, Posted, flash_from, read_form, refusal, shown
from notifier.http.console.overview import overview_context
from notifier.http.console.render import html_page, secure
from notifier.http.operator_auth import Operator, OperatorTokens
from notifier.store.overview import read_overview
from notifier.store.sql import SqlStore

__all__ = ["console_router"]

T = TypeVar("T")

_CSS = resources.files("notifier.http.console").joinpath("static/console.css").read_bytes()


def console_router(
    *, engine: Engine, tokens: OperatorTokens, wake: Callable[[], None] | None = None
) -> APIRouter:
    """The /console pages over `engine`'s SQL ledger, for the holders of `tokens`.

    `wake` tells the delivery worker that notices became due (after a retry, a resend)."""
    store = engine.store
    if not isinstance(store, SqlStore):
        raise TypeError("the console reads a SQL ledger (notifier.store.sql.SqlStore)")
    access = Access(tokens)
    router = APIRouter(include_in_schema=False)

    def page(request: Request, operator: Operator, template: str, **context: Any) -> Response:
        response = html_page(template, operator=operator, flash=flash_from(request), **context)
        return shown(response, request)

    async def reading(read: Callable[[], T]) -> T | Response:
        try:
            return await run_in_threadpool(read)
        except StoreError:
            return refusal(
                503,
                "The ledger is unavailable",
                "The store did not answer; nothing was changed. Try again in a moment.",
            )

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
            return access.login_page(request, wrong=True)
        operator = tokens.by_token(form.get("token", "").strip(), via="cookie")
        if operator is None:
            return access.login_page(request, wrong=True)
        return access.logged_in(request, operator, form.get("next") or "/console")

    @router.post("/console/logout")
    async def logout(request: Request) -> Response:
        posted = await access.poster(request, act=False)
        if not isinstance(posted, Posted):
            return posted
        response = access.login_page(request)
        response.status_code = 200
        response.delete_cookie("notifier_console", path="/", httponly=True, samesite="strict")
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

    return router

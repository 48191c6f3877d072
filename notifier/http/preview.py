"""The preview page: see any rule's email, rendered exactly as delivery would, in a browser.

`/preview` lists the rules; `/preview/{rule_id}` renders one from its sample order or from
record JSON pasted into the form, showing the headers, the text part and the HTML in a
sandboxed iframe. It goes through `notifier.preview`, so it sends nothing and never
touches the store.

Off unless `NOTIFIER_PREVIEW_TOKEN` is set (`include_preview` mounts nothing then). The
token comes as `?token=` (then swapped for a cookie and dropped from the address),
`Authorization: Bearer`, `X-Preview-Token`, or that cookie; compared in constant time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from notifier.authoring.preview import (
    Preview,
    accepted_records,
    find_rule,
    render_preview,
    sample_records,
)
from notifier.core.models import Record
from notifier.core.records import parse_json_body
from notifier.core.rules import Rule
from notifier.engine import utc_now
from notifier.errors import NotifierError, TemplateError
from notifier.http.preview_pages import DENIED, LIST, RULE, links, page, secure
from notifier.http.tokens import bearer, derive, same
from notifier.rendering.compose import Composer
from notifier.settings import Settings

__all__ = ["COOKIE", "include_preview", "include_preview_from_settings", "preview_router"]

COOKIE = "notifier_preview"
TOKEN_HEADER = "x-preview-token"
MAX_FORM_BYTES = 512 * 1024


def include_preview(
    app: FastAPI, *, composer: Composer, rules: Sequence[Rule], token: str | None
) -> bool:
    """Mount the preview page on `app` if a token is configured; report whether it did."""
    if not token:
        return False
    app.include_router(preview_router(composer=composer, rules=rules, token=token))
    return True


def include_preview_from_settings(app: FastAPI, settings: Settings) -> bool:
    """`notifier serve`'s one line: mount the page when NOTIFIER_PREVIEW_TOKEN is set.

    Rules, templates and campaign files are read now, once, like the rest of the settings."""
    if settings.preview_token is None or not settings.preview_token.get_secret_value():
        return False
    from notifier.core.rules import load_rules
    from notifier.rendering.setup import make_composer

    return include_preview(
        app,
        composer=make_composer(settings),
        rules=load_rules(settings.rules_dir),
        token=settings.preview_token.get_secret_value(),
    )


def preview_router(*, composer: Composer, rules: Sequence[Rule], token: str) -> APIRouter:
    """The /preview pages, requiring `token`."""
    if not token:
        raise ValueError("the preview page needs a token (NOTIFIER_PREVIEW_TOKEN)")
    guard = _TokenGuard(token)
    pages = _Pages(composer, tuple(rules))
    router = APIRouter(include_in_schema=False)

    @router.get("/preview")
    async def rule_list(request: Request) -> Response:
        return guard.check(request) or pages.rule_list()

    @router.get("/preview/{rule_id}")
    async def rule_sample(request: Request, rule_id: str, campaign: str = "") -> Response:
        denied = guard.check(request)
        if denied is not None:
            return denied
        return await run_in_threadpool(pages.rule_page, rule_id, None, campaign or None)

    @router.post("/preview/{rule_id}")
    async def rule_from_records(request: Request, rule_id: str) -> Response:
        denied = guard.check(request)
        if denied is not None:
            return denied
        form = await _form(request)
        return await run_in_threadpool(
            pages.rule_page, rule_id, form.get("records", ""), form.get("campaign") or None
        )

    return router


# --- the token ----------------------------------------------------------------------------


class _TokenGuard:
    def __init__(self, token: str) -> None:
        self._token = token
        # The cookie holds a value derived from the token, never the token itself.
        self._cookie = derive(token, "notifier preview cookie")

    def check(self, request: Request) -> Response | None:
        """None when the request may see the page; else the response to send instead."""
        if same(request.cookies.get(COOKIE), self._cookie):
            return None
        header = request.headers.get(TOKEN_HEADER) or bearer(request.headers.get("authorization"))
        if same(header, self._token):
            return None
        query = request.query_params.get("token")
        if same(query, self._token):
            # Keep the token out of the address bar, history and logs from here on.
            rest = request.url.remove_query_params("token")
            target = rest.path + (f"?{rest.query}" if rest.query else "")
            redirect = RedirectResponse(target, status_code=303)
            redirect.set_cookie(
                COOKIE,
                self._cookie,
                path="/preview",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
            secure(redirect)
            return redirect
        given = query is not None or header is not None or COOKIE in request.cookies
        return page(
            DENIED,
            status_code=403 if given else 401,
            headers={"WWW-Authenticate": 'Bearer realm="notifier preview"'},
            wrong=given,
        )


# --- the pages ----------------------------------------------------------------------------


class _Pages:
    def __init__(self, composer: Composer, rules: tuple[Rule, ...]) -> None:
        self.composer = composer
        self.rules = rules

    def rule_list(self) -> Response:
        return page(LIST, rules=self.rules)

    def rule_page(self, rule_id: str, pasted: str | None, campaign: str | None) -> Response:
        try:
            rule = find_rule(self.rules, rule_id)
        except NotifierError as exc:
            return page(LIST, status_code=404, rules=self.rules, error=str(exc))
        shown: Preview | None = None
        error = None
        status = 200
        records_text = pasted if pasted is not None else _sample_json(rule, campaign)
        try:
            records = _pasted_records(pasted) if pasted else None
            shown = render_preview(self.composer, rule, records, campaign_id=campaign)
        except TemplateError as exc:
            error, status = f"The template does not render: {exc}", 422
        except NotifierError as exc:
            error, status = f"The records are not valid: {exc}", 400
        return page(
            RULE,
            status_code=status,
            rule=rule,
            shown=shown,
            error=error,
            records_text=records_text,
            campaign=campaign or "",
            links=links(shown.html) if shown else [],
        )


class _BadJsonError(NotifierError):
    """The pasted records are not JSON."""


def _pasted_records(text: str) -> list[Record]:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise _BadJsonError(f"pasted text is not JSON: {exc}") from None
    items = parse_json_body(body, source="pasted records", received_at=utc_now())
    return accepted_records(items)


def _sample_json(rule: Rule, campaign: str | None) -> str:
    records = [r.to_json() for r in sample_records(rule, campaign_id=campaign)]
    for record in records:
        record.pop("received_at", None)
    return json.dumps(records if len(records) > 1 else records[0], indent=2)


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise HTTPException(415, "send the form as application/x-www-form-urlencoded")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, f"the form is larger than {MAX_FORM_BYTES // 1024} KiB")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}

"""Who may see and do what on the console's pages, answered as pages rather than JSON.

The tokens, the cookie and the CSRF value are notifier.http.operator_auth's (shared with
the notices API); this module only turns their answers into what a browser should see:
the login form for no credentials, a 403 page for the viewer or a missing CSRF value, and
the `?token=` login that swaps the token for the cookie and drops it from the address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from notifier.http.body import HttpProblem, media_type, read_body
from notifier.http.console.render import html_page, secure
from notifier.http.operator_auth import COOKIE, CSRF_FIELD, Operator, OperatorTokens

__all__ = ["FLASH_COOKIE", "Access", "Flash", "Posted"]

# A console form is a handful of short fields; anything larger is not one of ours.
MAX_FORM_BYTES = 64 * 1024
FLASH_COOKIE = "notifier_console_flash"


@dataclass(frozen=True, slots=True)
class Flash:
    """The one-line outcome of an action, shown on the page the action redirects to."""

    text: str
    kind: str = "ok"  # ok | error


@dataclass(frozen=True, slots=True)
class Posted:
    """A state-changing request that passed every check: who, and its form fields."""

    operator: Operator
    form: dict[str, str]


class Access:
    def __init__(self, tokens: OperatorTokens) -> None:
        self.tokens = tokens

    def reader(self, request: Request) -> Operator | Response:
        """The operator behind a GET, or the response to send instead (login, redirect)."""
        given = request.query_params.get("token")
        if given is not None:
            return self._login_by_query(request, given)
        operator = self.tokens.identify(request)
        if operator is None:
            stale = "authorization" in request.headers or _has_cookie(request)
            return self.login_page(request, wrong=stale)
        return operator

    def _login_by_query(self, request: Request, given: str) -> Response:
        operator = self.tokens.by_token(given, via="cookie")
        if operator is None:
            return self.login_page(request, wrong=True)
        # Keep the token out of the address bar, history and logs from here on.
        rest = request.url.remove_query_params("token")
        target = rest.path + (f"?{rest.query}" if rest.query else "")
        return self.logged_in(request, operator, target)

    def logged_in(self, request: Request, operator: Operator, target: str) -> Response:
        redirect = RedirectResponse(_console_path(target), status_code=303)
        self.tokens.set_cookie(redirect, operator, secure=request.url.scheme == "https")
        return secure(redirect)

    def login_page(
        self, request: Request, *, wrong: bool = False, target: str | None = None
    ) -> Response:
        """The login form; once logged in, on to `target` (default: the page asked for)."""
        if target is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return html_page(
            "login.html",
            status_code=403 if wrong else 401,
            headers={"WWW-Authenticate": 'Bearer realm="notifier console"'},
            next=_console_path(target),
            wrong=wrong,
        )

    async def poster(self, request: Request, *, act: bool = True) -> Posted | Response:
        """Who sent a state-changing POST and its form, or the refusal: 401 without
        credentials; 403 without the CSRF value (cookie requests); 403 for the viewer
        when the request acts (`act`)."""
        operator = self.tokens.identify(request)
        if operator is None:
            return refusal(401, "Not logged in", "Log in with the console token first.")
        try:
            form = await read_form(request)
        except HttpProblem as problem:
            return refusal(problem.status, "Not a console form", problem.detail)
        if operator.via == "cookie" and not self.tokens.csrf_ok(operator, form.get(CSRF_FIELD)):
            return refusal(
                403,
                "Refused: no valid CSRF token",
                "The form did not carry this session's CSRF token. Reload the page and try"
                " again; if you did not press a button on the console, someone tried to act"
                " in your name.",
            )
        if act and not operator.can_act:
            return refusal(
                403,
                "Read-only access",
                "The viewer token can look, not act: retries, resends and suppressions need"
                " the console token.",
            )
        return Posted(operator, form)


def refusal(status: int, heading: str, message: str, **context: Any) -> Response:
    return html_page(
        "message.html", status_code=status, heading=heading, message=message, **context
    )


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form body (the console's forms), size-limited, last value of each field."""
    if media_type(request) != "application/x-www-form-urlencoded":
        raise HttpProblem(415, "send the form as application/x-www-form-urlencoded")
    body = await read_body(request, MAX_FORM_BYTES)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HttpProblem(400, f"broken form body: {exc}") from None
    if any("\x00" in name or "\x00" in value for name, value in pairs):
        # No key, address or token holds one, and PostgreSQL refuses it in text.
        raise HttpProblem(400, "the form holds a NUL character")
    return dict(pairs)


def flash_from(request: Request) -> Flash | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    kind, _, text = unquote(raw).partition(":")
    return Flash(text[:500], "error" if kind == "error" else "ok")


def redirect_with(target: str, flash: Flash) -> Response:
    """POST-redirect-GET: back to `target`, the outcome kept for one page in a cookie."""
    response = RedirectResponse(_console_path(target), status_code=303)
    response.set_cookie(
        FLASH_COOKIE,
        quote(f"{flash.kind}:{flash.text}"[:900], safe=""),
        path="/console",
        httponly=True,
        samesite="strict",
        max_age=60,
    )
    return secure(response)


def shown(response: Response, request: Request) -> Response:
    """`response`, with the flash it displayed cleared."""
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/console", httponly=True, samesite="strict")
    return response


def _console_path(target: str) -> str:
    """`target` if it is a console path on this server, else the overview: a redirect here
    never leads elsewhere (`//evil.example`, `https://…`, `/console.evil`)."""
    if target == "/console" or (target.startswith("/console/") and "\\" not in target):
        return target
    if target.startswith("/console?"):
        return target
    return "/console"


def _has_cookie(request: Request) -> bool:
    return COOKIE in request.cookies

"""Who is asking: the operator console's and the notices API's two tokens.

`NOTIFIER_CONSOLE_TOKEN` gives full access (search, read, act); the optional
`NOTIFIER_CONSOLE_VIEWER_TOKEN` reads only. Without the first, the console and the API are
not mounted at all (404). A request proves who it is by `Authorization: Bearer TOKEN`
(scripts) or by the console cookie (the browser, after logging in once with the token). The
cookie holds a value derived from the token, never the token, and is HttpOnly and
SameSite=Strict. A state-changing request that came with the cookie must also carry the
CSRF value (header `X-CSRF-Token` or form field `csrf_token`), which pages embed; a Bearer
request needs none — a browser never adds that header by itself. Every comparison is
constant-time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import Response

from notifier.http.body import HttpProblem
from notifier.http.tokens import bearer, derive, same
from notifier.settings import Settings

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "Operator",
    "OperatorTokens",
    "Role",
]

COOKIE = "notifier_console"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
_REALM = 'Bearer realm="notifier console"'
MAX_FORM_BYTES = 64 * 1024  # a console form carries a few short fields
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Role = Literal["operator", "viewer"]
Via = Literal["bearer", "cookie"]


@dataclass(frozen=True, slots=True)
class Operator:
    """The person (or script) behind a request, as far as the tokens tell."""

    role: Role
    # Written to the audit log: names the token (and a short fingerprint, so a rotated
    # token shows as a different actor), never contains it.
    actor: str
    via: Via
    # The CSRF value of this operator's token, for the pages to embed in their forms.
    csrf: str

    @property
    def can_act(self) -> bool:
        """Full access: may retry, resend and change suppressions."""
        return self.role == "operator"


@dataclass(frozen=True, slots=True)
class _Token:
    role: Role
    secret: str
    cookie: str
    csrf: str
    actor: str

    @classmethod
    def of(cls, role: Role, secret: str) -> _Token:
        name = "console-token" if role == "operator" else "viewer-token"
        return cls(
            role=role,
            secret=secret,
            cookie=derive(secret, "notifier console cookie"),
            csrf=derive(secret, "notifier console csrf"),
            actor=f"{name}:{derive(secret, 'notifier console actor')[:8]}",
        )

    def operator(self, via: Via) -> Operator:
        return Operator(role=self.role, actor=self.actor, via=via, csrf=self.csrf)


class OperatorTokens:
    """The configured tokens, and the checks every console and API request goes through."""

    def __init__(self, operator_token: str, viewer_token: str | None = None) -> None:
        if not operator_token:
            raise ValueError("the console needs a token (NOTIFIER_CONSOLE_TOKEN)")
        if viewer_token and same(viewer_token, operator_token):
            raise ValueError("the viewer token must differ from the console token")
        self._tokens = [_Token.of("operator", operator_token)]
        if viewer_token:
            self._tokens.append(_Token.of("viewer", viewer_token))

    @classmethod
    def from_settings(cls, settings: Settings) -> OperatorTokens | None:
        """The tokens from NOTIFIER_CONSOLE_TOKEN / _VIEWER_TOKEN; None: console off."""
        full = settings.console_token.get_secret_value().strip() if settings.console_token else ""
        if not full:
            return None
        viewer = settings.console_viewer_token
        return cls(full, viewer.get_secret_value().strip() or None if viewer else None)

    # --- identifying ----------------------------------------------------------------------

    def by_token(self, given: str | None, *, via: Via = "bearer") -> Operator | None:
        """The operator whose token `given` is (e.g. from a login form), or None."""
        found = None
        for token in self._tokens:  # no early exit: the time taken names no token
            if same(given, token.secret):
                found = token.operator(via)
        return found

    def by_cookie(self, value: str | None) -> Operator | None:
        """The operator whose console cookie `value` is, or None."""
        found = None
        for token in self._tokens:
            if same(value, token.cookie):
                found = token.operator("cookie")
        return found

    def identify(self, request: Request) -> Operator | None:
        """Who sent `request`: its Bearer token first, else its cookie; None if neither."""
        header = bearer(request.headers.get("authorization"))
        if header is not None:
            return self.by_token(header)
        return self.by_cookie(request.cookies.get(COOKIE))

    # --- the cookie and CSRF ----------------------------------------------------------------

    def cookie_value(self, operator: Operator) -> str:
        """What the console cookie holds for `operator` (derived, never the token)."""
        return next(t.cookie for t in self._tokens if t.actor == operator.actor)

    def set_cookie(self, response: Response, operator: Operator, *, secure: bool) -> None:
        """Log `operator` in: the console cookie on `response`, for the console and the API."""
        response.set_cookie(
            COOKIE,
            self.cookie_value(operator),
            path="/",
            httponly=True,
            samesite="strict",
            secure=secure,
        )

    @staticmethod
    def csrf_ok(operator: Operator, given: str | None) -> bool:
        """`given` is `operator`'s CSRF value (constant time)."""
        return same(given, operator.csrf)

    async def check_csrf(self, request: Request, operator: Operator) -> None:
        """Raise 403 if `request` changes state, came with the cookie, and lacks the CSRF value."""
        if request.method in _SAFE_METHODS or operator.via == "bearer":
            return
        given = request.headers.get(CSRF_HEADER)
        if given is None and _is_form(request):
            given = await _form_field(request, CSRF_FIELD)
        if not self.csrf_ok(operator, given):
            raise HttpProblem(403, "missing or wrong CSRF token: reload the page and try again")

    # --- FastAPI dependencies ---------------------------------------------------------------

    def reader(self) -> Callable[[Request], Awaitable[Operator]]:
        """A dependency: any valid token (operator or viewer); 401 otherwise."""

        async def dependency(request: Request) -> Operator:
            operator = self.identify(request)
            if operator is None:
                raise HttpProblem(
                    401,
                    "missing or wrong console token (Authorization: Bearer, or log in)",
                    headers={"WWW-Authenticate": _REALM},
                )
            await self.check_csrf(request, operator)
            return operator

        return dependency

    def actor(self) -> Callable[[Request], Awaitable[Operator]]:
        """A dependency: full access required; 401 without a token, 403 for the viewer."""
        read = self.reader()

        async def dependency(request: Request) -> Operator:
            operator = await read(request)
            if not operator.can_act:
                raise HttpProblem(403, "the viewer token is read-only")
            return operator

        return dependency


def _is_form(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media == "application/x-www-form-urlencoded"


async def _form_field(request: Request, name: str) -> str | None:
    """One field of a small urlencoded form. The body stays readable by the endpoint
    (Starlette keeps it on the request once read)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HttpProblem(413, f"the form is larger than {MAX_FORM_BYTES // 1024} KiB")
    request._body = bytes(body)  # what request.body() returns from now on
    values = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).get(name)
    return values[-1] if values else None

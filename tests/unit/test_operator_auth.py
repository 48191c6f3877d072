"""Who is asking the console and the notices API: tokens, the cookie, CSRF, roles."""

from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import SecretStr

from notifier.http.body import HttpProblem
from notifier.http.operator_auth import COOKIE, CSRF_HEADER, Operator, OperatorTokens
from notifier.settings import Settings

FULL = "console-token-8d1e"
VIEWER = "viewer-token-27b0"


def app_for(tokens: OperatorTokens) -> FastAPI:
    app = FastAPI()
    reader = tokens.reader()
    actor = tokens.actor()

    @app.exception_handler(HttpProblem)
    async def _problem(request: Request, exc: HttpProblem) -> JSONResponse:
        return exc.response()

    @app.get("/who")
    async def who(operator: Operator = Depends(reader)) -> dict[str, str]:
        return {"role": operator.role, "actor": operator.actor, "via": operator.via}

    @app.post("/act")
    async def act(request: Request, operator: Operator = Depends(actor)) -> dict[str, str]:
        return {"done": operator.actor, "body": (await request.body()).decode()}

    @app.post("/login")
    async def login(request: Request) -> JSONResponse:
        operator = tokens.by_token((await request.body()).decode())
        response = JSONResponse({"csrf": operator.csrf if operator else ""})
        if operator is not None:
            tokens.set_cookie(response, operator, secure=False)
        return response

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(app_for(OperatorTokens(FULL, VIEWER)))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_console_token_means_the_console_is_off() -> None:
    """Without NOTIFIER_CONSOLE_TOKEN there is nothing to mount."""
    assert OperatorTokens.from_settings(Settings(console_token=None)) is None
    assert OperatorTokens.from_settings(Settings(console_token=SecretStr("  "))) is None
    on = OperatorTokens.from_settings(Settings(console_token=SecretStr(FULL)))
    assert on is not None and on.by_token(FULL) is not None


def test_the_viewer_token_must_differ() -> None:
    """A viewer token equal to the full one would make the role ambiguous."""
    with pytest.raises(ValueError, match="differ"):
        OperatorTokens(FULL, FULL)


def test_bearer_tokens_name_their_role_and_never_the_token(client: TestClient) -> None:
    """Each token is one role; the audit name hides the token."""
    full = client.get("/who", headers=bearer(FULL)).json()
    viewer = client.get("/who", headers=bearer(VIEWER)).json()
    assert full["role"] == "operator" and viewer["role"] == "viewer"
    assert full["actor"].startswith("console-token:") and FULL not in full["actor"]
    assert viewer["actor"].startswith("viewer-token:") and VIEWER not in viewer["actor"]


def test_missing_or_wrong_tokens_get_401(client: TestClient) -> None:
    """No credentials, a wrong token or a forged cookie: 401 with a challenge."""
    assert client.get("/who").status_code == 401
    wrong = client.get("/who", headers=bearer("nope"))
    assert wrong.status_code == 401 and "Bearer" in wrong.headers["www-authenticate"]
    client.cookies.set(COOKIE, FULL)  # the token itself is not a valid cookie
    assert client.get("/who").status_code == 401


def test_the_viewer_cannot_act(client: TestClient) -> None:
    """Full access acts; the viewer gets 403."""
    assert client.post("/act", headers=bearer(FULL)).status_code == 200
    refused = client.post("/act", headers=bearer(VIEWER))
    assert refused.status_code == 403 and "read-only" in refused.json()["detail"]


def test_the_cookie_is_derived_httponly_and_strict(client: TestClient) -> None:
    """Logging in sets a cookie that is not the token, HttpOnly and SameSite=Strict."""
    response = client.post("/login", content=FULL)
    header = response.headers["set-cookie"]
    assert "httponly" in header.lower() and "samesite=strict" in header.lower()
    assert FULL not in header
    assert client.get("/who").json()["via"] == "cookie"


def test_a_cookie_post_needs_the_csrf_value(client: TestClient) -> None:
    """With the cookie, a POST without (or with a wrong) CSRF value is refused."""
    csrf = client.post("/login", content=FULL).json()["csrf"]
    assert client.post("/act").status_code == 403
    assert client.post("/act", headers={CSRF_HEADER: "0" * 64}).status_code == 403
    assert client.post("/act", headers={CSRF_HEADER: csrf}).status_code == 200
    form = client.post("/act", data={"csrf_token": csrf, "reason": "bounced"})
    assert form.status_code == 200
    assert "reason=bounced" in form.json()["body"]  # the endpoint still reads the form


def test_the_csrf_value_is_per_token(client: TestClient) -> None:
    """The viewer's CSRF value does not pass for the full token's cookie."""
    tokens = OperatorTokens(FULL, VIEWER)
    viewer = tokens.by_token(VIEWER)
    assert viewer is not None
    client.post("/login", content=FULL)
    assert client.post("/act", headers={CSRF_HEADER: viewer.csrf}).status_code == 403


def test_a_viewer_cookie_reads_but_cannot_act(client: TestClient) -> None:
    """The viewer's cookie sees, and is refused actions even with its CSRF value."""
    csrf = client.post("/login", content=VIEWER).json()["csrf"]
    assert client.get("/who").json()["role"] == "viewer"
    assert client.post("/act", headers={CSRF_HEADER: csrf}).status_code == 403

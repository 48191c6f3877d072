"""Schemathesis against the app's own OpenAPI schema: no input makes it answer 500, and no
generated (so unsigned) delivery feedback gets past a provider's verification."""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from support.feedback_providers import (
    MAILGUN_KEY,
    POSTMARK_PASSWORD,
    POSTMARK_USER,
    TOPIC,
    SendgridSide,
)
from support.project import settings_for

from notifier.http.webhook import create_app
from notifier.processes.serve import feedback_router_for
from notifier.processes.wiring import feedback_intake, open_engine
from notifier.settings import Settings

FEEDBACK = "^/v1/feedback/"


def _settings(folder: Path) -> Settings:
    # Every feedback provider configured, so generated requests reach their verification.
    return settings_for(
        folder,
        ses_topic_arns=TOPIC,
        postmark_webhook_user=POSTMARK_USER,
        postmark_webhook_password=POSTMARK_PASSWORD,
        sendgrid_webhook_public_key=SendgridSide().public_key,
        mailgun_signing_key=MAILGUN_KEY,
    )


def _app_on_a_temporary_ledger() -> object:
    # Insecure (no secret, no token) so generated bodies get past authentication and
    # reach the parsers; signature handling has its own tests.
    stack = ExitStack()
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="notifier-fuzz-")))
    settings = _settings(folder)
    engine = stack.enter_context(open_engine(settings))
    _cleanups.append(stack)
    return create_app(
        settings=settings,
        engine=engine,
        insecure=True,
        routers=[feedback_router_for(settings, engine, feedback_intake(settings, engine))],
    )


_cleanups: list[ExitStack] = []
schema = schemathesis.openapi.from_asgi("/openapi.json", _app_on_a_temporary_ledger())


def teardown_module() -> None:
    for stack in _cleanups:
        stack.close()


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_input_makes_the_app_fail(case: schemathesis.Case) -> None:
    """Every operation answers generated input with a documented status, never a 5xx."""
    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]
    )


@schema.include(path_regex=FEEDBACK).parametrize()
@settings(
    max_examples=30,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_unsigned_feedback_is_refused(case: schemathesis.Case) -> None:
    """A feedback request nobody signed is 401 (413 when too big), whatever its body."""
    response = case.call()
    if case.method.upper() != "POST":  # schemathesis also tries the methods not offered
        assert response.status_code == 405
        return
    assert response.status_code in (401, 413), (case.path, response.status_code, response.text)

"""Schemathesis against the app's own OpenAPI schema: no input makes it answer 500."""

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
from support.project import settings_for

from notifier.http.webhook import create_app
from notifier.processes.wiring import open_engine


def _app_on_a_temporary_ledger() -> object:
    # Insecure (no secret, no token) so generated bodies get past authentication and
    # reach the parsers; signature handling has its own tests.
    stack = ExitStack()
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="notifier-fuzz-")))
    engine = stack.enter_context(open_engine(settings_for(folder)))
    _cleanups.append(stack)
    return create_app(settings=settings_for(folder), engine=engine, insecure=True)


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

"""Schemathesis over the notices API's own OpenAPI schema: no input makes it answer 500."""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, Phase, settings
from pydantic import SecretStr
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from support.project import ROOT, settings_for

from notifier.core.models import Record
from notifier.core.records import read_path
from notifier.http.notices_api import notices_api_from_settings
from notifier.http.webhook import create_app
from notifier.processes.wiring import open_engine

TOKEN = "console-token-fuzz-81c3"
_cleanups: list[ExitStack] = []


def _app_with_the_example_batch() -> object:
    stack = ExitStack()
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="notifier-fuzz-")))
    config = settings_for(folder, console_token=SecretStr(TOKEN))
    engine = stack.enter_context(open_engine(config))
    items = read_path(ROOT / "examples" / "batch.jsonl", received_at=datetime.now(UTC))
    engine.ingest([item for item in items if isinstance(item, Record)])
    _cleanups.append(stack)
    router = notices_api_from_settings(engine, config)
    assert router is not None
    return create_app(settings=config, engine=engine, routers=[router], insecure=True)


schema = schemathesis.openapi.from_asgi("/openapi.json", _app_with_the_example_batch()).include(
    path_regex="^/v1/(notices|suppressions)"
)


def teardown_module() -> None:
    for stack in _cleanups:
        stack.close()


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_input_makes_the_notices_api_fail(case: schemathesis.Case) -> None:
    """Every operation answers generated input with a documented status, never a 5xx."""
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
    assert response.status_code != 401  # the token got the input past authentication

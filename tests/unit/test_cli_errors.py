"""The CLI's one error translation: a NotifierError anywhere becomes `error: …` and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from notifier.cli import app
from notifier.cli.root import EXIT_USAGE, TranslatingGroup
from notifier.errors import ConfigError, StoreError

BAD_PORT = {"NOTIFIER_SMTP_PORT": "abc"}
BAD_PORT_MESSAGE = "error: invalid settings: NOTIFIER_SMTP_PORT: Input should be a valid integer"


def _toy_app() -> typer.Typer:
    root = typer.Typer(cls=TranslatingGroup)
    nested = typer.Typer()
    root.add_typer(nested, name="group")

    @root.command()
    def top() -> None:
        raise StoreError("the ledger at somewhere.db is locked")

    @root.command()
    def other() -> None:
        raise ValueError("a bug, not an operator's problem")

    @nested.command()
    def inner() -> None:
        raise ConfigError("NOTIFIER_THING: not a thing")

    return root


def test_a_notifier_error_in_a_command_or_a_subgroup_is_one_error_line() -> None:
    """Raised in a top-level command or a nested group's command: `error: <message>`, exit 2."""
    toy = _toy_app()
    for args, message in (
        (["top"], "error: the ledger at somewhere.db is locked\n"),
        (["group", "inner"], "error: NOTIFIER_THING: not a thing\n"),
    ):
        result = CliRunner().invoke(toy, args, catch_exceptions=False)
        assert result.exit_code == EXIT_USAGE, args
        assert result.stderr == message
        assert result.stdout == ""


def test_other_exceptions_are_not_dressed_up_as_operator_errors() -> None:
    """Only the project's errors are translated: a bug still surfaces as itself."""
    result = CliRunner().invoke(_toy_app(), ["other"])
    assert isinstance(result.exception, ValueError)
    assert "error:" not in result.stderr


# One command (or more) from each command module of notifier.cli.
COMMAND_PER_MODULE = {
    "batch: run": ["run", "-"],
    "ledger: notices": ["notices", "--json"],
    "authoring: preview": ["preview", "tracking_number_assigned"],
    "processes: worker": ["worker", "--until-idle"],
    "processes: schedule": ["schedule"],
    "processes: schedule list": ["schedule", "list"],
    "database: db upgrade": ["db", "upgrade"],
    "delivery: deliver": ["deliver"],
    "delivery: suppress list": ["suppress", "list"],
}


@pytest.mark.parametrize("args", COMMAND_PER_MODULE.values(), ids=COMMAND_PER_MODULE.keys())
def test_a_bad_setting_is_one_error_line_for_every_command_module(args: list[str]) -> None:
    """NOTIFIER_SMTP_PORT=abc: each module's command prints the error once, exit 2, no traceback."""
    result = CliRunner().invoke(app, args, env=BAD_PORT, catch_exceptions=False)
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.startswith(BAD_PORT_MESSAGE)
    assert result.stderr.count("error:") == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


UNOPENABLE_STORE = {
    "ledger: notices": ["notices"],
    "database: db upgrade": ["db", "upgrade"],
    "delivery: deliver": ["deliver"],
    "delivery: suppress list": ["suppress", "list"],
    "processes: schedule list": ["schedule", "list"],
}


@pytest.mark.parametrize("args", UNOPENABLE_STORE.values(), ids=UNOPENABLE_STORE.keys())
def test_a_store_that_cannot_open_is_one_error_line(args: list[str], tmp_path: Path) -> None:
    """The error raised from inside the command (not from settings) is translated the same way."""
    url = f"sqlite:///{tmp_path / 'no such folder' / 'notifier.db'}"
    result = CliRunner().invoke(
        app, args, env={"NOTIFIER_DATABASE_URL": url}, catch_exceptions=False
    )
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.startswith("error: store ")
    assert result.stderr.count("error:") == 1
    assert "Traceback" not in result.stderr


def test_preview_without_a_rules_folder_is_a_usage_error(tmp_path: Path) -> None:
    """A missing rules folder is the set-up's fault: exit 2, not preview's own exit 1."""
    rules = tmp_path / "rules"
    result = CliRunner().invoke(
        app,
        ["preview", "tracking_number_assigned"],
        env={"NOTIFIER_RULES_DIR": str(rules)},
        catch_exceptions=False,
    )
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == f"error: rules folder {rules} does not exist\n"


def test_the_installed_entry_point_translates_too(tmp_path: Path) -> None:
    """`python -m notifier` (main(), not the test runner) prints the same one line, exit 2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")} | BAD_PORT
    done = subprocess.run(
        [sys.executable, "-m", "notifier", "notices"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == EXIT_USAGE
    assert done.stderr.startswith(BAD_PORT_MESSAGE)
    assert done.stderr.count("error:") == 1
    assert "Traceback" not in done.stderr

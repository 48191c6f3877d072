"""The `notifier` command: parse, wire, delegate. Errors are translated here, once."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from notifier.core.records import Rejection, read_path, read_records
from notifier.errors import NotifierError
from notifier.settings import Settings, load_settings

if TYPE_CHECKING:
    from notifier.core.models import Record
    from notifier.engine import Engine
    from notifier.engine.reports import DeliveryReport

EXIT_REJECTED = 1
EXIT_USAGE = 2

out = Console()
if not out.is_terminal:
    # Piped output is read by scripts and people alike: do not fold keys at 80 columns.
    out = Console(width=200)
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    # Escaped and never hard-wrapped: messages carry paths and template code to grep for.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


class TranslatingGroup(TyperGroup):
    """The root group: a NotifierError from any command or subgroup becomes `error: …`, exit 2."""

    # `ctx` is click's Context, or the copy of click that newer typers vendor: either will do.
    def invoke(self, ctx: Any) -> Any:
        # Every (sub)command runs inside this call, from `main()` and from typer's CliRunner
        # alike, so this is the one place the project's errors meet the operator.
        try:
            return super().invoke(ctx)
        except NotifierError as exc:
            raise fail(str(exc)) from None


app = typer.Typer(cls=TranslatingGroup, no_args_is_help=True, add_completion=False, help=__doc__)


def settings() -> Settings:
    """The settings, read once per command, and logging set up as they say."""
    loaded = load_settings()
    logging.basicConfig(
        level=loaded.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Migrations announce themselves at INFO on every first use; operators need not see that.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # APScheduler narrates every run at INFO; our jobs log what they did themselves.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return loaded


def open_records(source: str, *, received_at: datetime) -> Iterable[Record | Rejection]:
    """The records of a file named on the command line, or of stdin for `-`."""
    if source == "-":
        return read_records(sys.stdin, source="<stdin>", received_at=received_at)
    path = Path(source)
    if not path.is_file():
        raise fail(f"{source}: no such file")
    return read_path(path, received_at=received_at)


async def deliver_and_close(engine: Engine, *, limit: int | None = None) -> DeliveryReport:
    """One delivery pass; the transport is closed however it ends."""
    try:
        return await engine.deliver_due(limit=limit)
    finally:
        await engine.transport.close()

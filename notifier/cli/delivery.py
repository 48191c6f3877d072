"""Operator commands for delivery: deliver, retry, resend, suppress. Thin: parse, wire, delegate.

Every send goes through the Engine; these commands only pick which notices, and report.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.table import Table

from notifier.cli.root import EXIT_REJECTED, app, deliver_and_close, err, fail, out, settings
from notifier.core.models import NoticeStatus
from notifier.engine import Engine, operator
from notifier.engine.reports import DeliveryReport, utc_now
from notifier.store.sql import SqlStore

suppress_app = typer.Typer(
    no_args_is_help=True, help="Addresses that must never be mailed (hard bounces add themselves)."
)
app.add_typer(suppress_app, name="suppress")

_ADDRESS = re.compile(r"[^\s@\x00-\x1f\x7f<>]+@[^\s@\x00-\x1f\x7f<>]+")


@contextmanager
def _store() -> Iterator[SqlStore]:
    config = settings()
    store = SqlStore(config.database_url)
    try:
        yield store
    finally:
        store.close()


def cli_actor() -> str:
    """Who acts from the command line, for the notices' history: the OS user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return "cli"


def print_delivery(report: DeliveryReport, *, title: str) -> None:
    counts = report.counts
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in (
        ("sent", counts[NoticeStatus.SENT]),
        ("retry (transient)", counts[NoticeStatus.RETRY]),
        ("failed", counts[NoticeStatus.FAILED]),
        ("cancelled", counts[NoticeStatus.CANCELLED]),
        ("ambiguous (may have arrived)", report.ambiguous),
    ):
        table.add_row(label, f"{value:,}")
    if report.lost_claims:
        table.add_row("claims lost to another worker", f"{report.lost_claims:,}")
    out.print(table)


def _waiting(engine: Engine) -> str | None:
    counts = engine.store.notice_counts()
    waiting = counts.get(NoticeStatus.RETRY, 0) + counts.get(NoticeStatus.PENDING, 0)
    if not waiting:
        return None
    due = engine.store.next_due_at()
    when = f", next due {due.strftime('%Y-%m-%d %H:%M:%S')} UTC" if due else ""
    return f"{waiting:,} notice(s) waiting (pending or retry){when}"


@app.command()
def deliver(
    limit: Annotated[
        int | None, typer.Option(min=1, help="Deliver at most this many notices.")
    ] = None,
) -> None:
    """One delivery pass over the notices due now (for cron), then a summary. Exit 0."""
    from notifier.processes.wiring import open_engine

    config = settings()
    with open_engine(config) as engine:
        report = asyncio.run(deliver_and_close(engine, limit=limit))
        waiting = _waiting(engine)
    print_delivery(report, title="notifier deliver")
    if waiting:
        out.print(waiting, highlight=False, soft_wrap=True)


@app.command()
def retry(
    keys: Annotated[
        list[str] | None, typer.Argument(help="Notice keys (see `notifier notices`).")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every notice waiting in retry or failed.")
    ] = False,
) -> None:
    """Make notices waiting in retry, or failed, due now; `notifier deliver` then sends them.

    They keep their key, so their Message-ID: a retry is the same email, not a new one.
    """
    if bool(keys) == all_:
        raise fail("give notice keys, or --all (not both)")
    with _store() as store:
        done = operator.retry(store, None if all_ else keys, actor=cli_actor(), now=utc_now())
    for key, address, why in done.suppressed:
        err.print(
            f"note: {address} is suppressed ({why}):"
            f" {key} will be cancelled unless you run"
            f" `notifier suppress remove {address}`",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    problems = done.problems
    made = done.count
    for problem in problems:
        err.print(f"[red]✗[/] {problem}", highlight=False, soft_wrap=True, markup=True)
    out.print(
        f"{made:,} notice(s) due now; `notifier deliver` sends them",
        highlight=False,
        soft_wrap=True,
    )
    if problems:
        raise typer.Exit(EXIT_REJECTED)


@app.command()
def resend(
    key: Annotated[str, typer.Argument(help="The key of a sent (or failed) notice.")],
    force: Annotated[
        bool, typer.Option("--force", help="Yes: send the customer a second copy.")
    ] = False,
) -> None:
    """Send a notice again, as a new notice KEY#resend-N with a new Message-ID (needs --force).

    The copy goes through the same delivery path (suppressed addresses and cancelled
    fulfillments still stop it) and stays in the ledger as a record of the resend.
    """
    from notifier.processes.wiring import open_engine

    config = settings()
    if not force:
        raise fail(
            f"resend sends notice {key!r} to its customer a second time, as a new email;"
            " add --force to do it"
        )

    async def once(engine: Engine) -> tuple[str, DeliveryReport]:
        try:
            return await operator.resend(engine, key, actor=cli_actor())
        finally:
            await engine.transport.close()

    with open_engine(config) as engine:
        new_key, _ = asyncio.run(once(engine))
        copy = engine.store.notice(new_key)
    assert copy is not None
    if copy.status is NoticeStatus.SENT:
        out.print(
            f"sent {key} again as {new_key} (Message-ID {copy.message_id})",
            highlight=False,
            soft_wrap=True,
        )
        return
    err.print(
        f"{new_key}: {copy.status.value}" + (f": {copy.reason}" if copy.reason else ""),
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    raise typer.Exit(EXIT_REJECTED)


# --- suppress -----------------------------------------------------------------------------


def _addresses(values: list[str]) -> list[str]:
    bad = [value for value in values if not _ADDRESS.fullmatch(value.strip())]
    if bad:
        raise fail("not an email address: " + ", ".join(map(repr, bad)))
    return list(dict.fromkeys(value.strip() for value in values))


@suppress_app.command("add")
def suppress_add(
    addresses: Annotated[list[str], typer.Argument(help="Email addresses.")],
    reason: Annotated[
        str, typer.Option(help="Why (shown on every notice cancelled for it).")
    ] = "added by the operator",
) -> None:
    """Never mail these addresses: their notices are cancelled, with the reason."""
    wanted = _addresses(addresses)
    with _store() as store:
        done = operator.suppress(store, wanted, reason=reason, actor=cli_actor(), now=utc_now())
    for address in wanted:
        if address.casefold() in done.already:
            err.print(
                f"{address}: already suppressed ({done.already[address.casefold()]})",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )
    out.print(f"{len(done.added):,} address(es) suppressed", highlight=False, soft_wrap=True)


@suppress_app.command("remove")
def suppress_remove(
    addresses: Annotated[list[str], typer.Argument(help="Email addresses.")],
) -> None:
    """Mail these addresses again (notices already cancelled stay cancelled)."""
    wanted = _addresses(addresses)
    with _store() as store:
        removed = operator.unsuppress(store, wanted, actor=cli_actor(), now=utc_now())
    for address in wanted:
        if address not in removed:
            err.print(
                f"{address}: was not suppressed", highlight=False, markup=False, soft_wrap=True
            )
    out.print(f"{len(removed):,} address(es) no longer suppressed", highlight=False, soft_wrap=True)


@suppress_app.command("list")
def suppress_list(
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON array instead of a table.")
    ] = False,
) -> None:
    """Every suppressed address, with why and since when."""
    with _store() as store:
        rows = store.suppressions()
    if as_json:
        sys.stdout.write(
            json.dumps(
                [
                    {"address": address, "reason": reason, "since": since.isoformat()}
                    for address, reason, since in rows
                ],
                indent=2,
                ensure_ascii=False,
            )
            + "\n"
        )
        return
    table = Table(title=f"{len(rows)} suppressed address(es)", title_justify="left")
    for column in ("address", "reason", "since"):
        table.add_column(column, overflow="fold")
    for address, reason, since in rows:
        table.add_row(address, reason, since.strftime("%Y-%m-%d %H:%M:%S"))
    out.print(table)

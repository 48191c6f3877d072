"""`notifier show KEY`: one notice's whole story — what it is, why, and what happened to it."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from notifier.cli.root import app, fail, out, settings
from notifier.store.queries import NoticeDossier


@app.command()
def show(
    key: Annotated[str, typer.Argument(help="The notice's key (see `notifier notices`).")],
) -> None:
    """A notice's history: its rule, trigger record, status, timeline, and its sent copy."""
    from notifier.store.queries import ConsoleQueries
    from notifier.store.sql import SqlStore

    store = SqlStore(settings().database_url)
    try:
        dossier = ConsoleQueries(store).dossier(key)
    finally:
        store.close()
    if dossier is None:
        raise fail(f"no notice with key {key!r} (see `notifier notices`)")
    print_dossier(dossier)


def print_dossier(dossier: NoticeDossier) -> None:
    notice = dossier.notice
    facts = Table(title=notice.key, show_header=False, title_justify="left")
    facts.add_column(style="bold")
    facts.add_column(overflow="fold")
    where = f"fulfillment {notice.fulfillment_id}" if notice.fulfillment_id else "whole order"
    for label, value in (
        ("rule", notice.rule_id),
        ("order", f"{notice.order_id} ({where})"),
        ("to", notice.recipient or "-"),
        ("status", notice.status.value + (f": {notice.reason}" if notice.reason else "")),
        ("attempts", str(notice.attempts)),
        ("message id", notice.message_id or "-"),
        ("sent copy", "kept" if dossier.copy_kept else "not kept"),
        ("trigger record", json.dumps(dict(notice.record), ensure_ascii=False, sort_keys=True)),
    ):
        facts.add_row(label, Text(value))  # customer data: never read as markup
    out.print(facts)
    lines = Table(title="timeline", title_justify="left")
    for column in ("at", "what", "outcome", "detail", "by"):
        lines.add_column(column, overflow="fold")
    for entry in dossier.timeline:
        lines.add_row(
            entry.at.strftime("%Y-%m-%d %H:%M:%S"),
            *(Text(v or "") for v in (entry.title, entry.outcome, entry.detail, entry.actor)),
        )
    out.print(lines)

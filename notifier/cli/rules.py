"""`notifier rules`: every rule, enabled or not, what fires it, its template, its ledger counts."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich.table import Table

from notifier.cli.root import app, out, settings
from notifier.core.models import NoticeStatus
from notifier.core.rules import Rule, describe_trigger, load_rules


def rule_json(rule: Rule, counts: Mapping[NoticeStatus, int]) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "enabled": rule.enabled,
        "fires_when": describe_trigger(rule),
        "template": rule.template,
        "file": rule.source,
        # Every status, zeros included: a script need not know which ones exist.
        "notices": {status.value: counts.get(status, 0) for status in NoticeStatus},
    }


def counts_text(counts: Mapping[NoticeStatus, int]) -> str:
    shown = [f"{counts[s]} {s.value}" for s in NoticeStatus if counts.get(s)]
    return ", ".join(shown) or "none"


@app.command("rules")
def list_rules(
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON array instead of a table.")
    ] = False,
) -> None:
    """List every rule: on or off, what fires it, its template, its notices in the ledger."""
    from notifier.store.sql import SqlStore

    config = settings()
    rules = load_rules(config.rules_dir)
    store = SqlStore(config.database_url)
    try:
        by_rule = store.notice_counts_by_rule()
    finally:
        store.close()
    if as_json:
        listed = [rule_json(rule, by_rule.get(rule.id, {})) for rule in rules]
        sys.stdout.write(json.dumps(listed, indent=2, ensure_ascii=False) + "\n")
        return
    table = Table(title=f"{len(rules)} rule(s)", title_justify="left")
    for column in ("rule", "enabled", "fires when", "template", "notices"):
        table.add_column(column, overflow="fold")
    for rule in rules:
        table.add_row(
            f"{rule.id}\n[dim]{rule.name}[/]",
            "[green]yes[/]" if rule.enabled else "[dim]no[/]",
            describe_trigger(rule),
            rule.template,
            counts_text(by_rule.get(rule.id, {})),
        )
    out.print(table)

"""Commands for whoever writes rules and templates: check, preview, carrier. Nothing is sent."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from notifier.cli.root import app, err, fail, open_records, out, settings
from notifier.core.models import Record
from notifier.engine import utc_now
from notifier.errors import TemplateError


@app.command()
def check() -> None:
    """Load every rule and render every template against a sample record; report all problems."""
    from notifier.authoring.checks import check_all

    config = settings()
    problems, checked = check_all(config)
    for problem in problems:
        err.print(f"[red]✗[/] {escape(problem)}", highlight=False, soft_wrap=True)
    if problems:
        raise fail(f"{len(problems)} problem(s) found", code=1)
    out.print(f"[green]✓[/] {checked} rule/template combination(s) render cleanly")


class PreviewFormat(enum.StrEnum):
    TEXT = "text"
    HTML = "html"
    EML = "eml"
    ALL = "all"


@app.command()
def preview(
    rule_id: Annotated[str, typer.Argument(metavar="RULE", help="The rule's id.")],
    record: Annotated[
        str | None,
        typer.Option(
            "--record",
            help="Record file (.json, .jsonl, .csv; one record or an order's several), "
            "or - for stdin. Default: a built-in realistic order.",
        ),
    ] = None,
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Render as this campaign (templates, sender).")
    ] = None,
    output_format: Annotated[
        PreviewFormat, typer.Option("--format", help="What to print.")
    ] = PreviewFormat.TEXT,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
    open_html: Annotated[
        bool, typer.Option("--open", help="Also open the HTML part in the web browser.")
    ] = False,
) -> None:
    """Render a rule's notice exactly as delivery would; sends nothing, writes no store."""
    from notifier.authoring import preview as previews
    from notifier.core.rules import load_rules
    from notifier.rendering.setup import make_composer

    config = settings()
    try:
        rule = previews.find_rule(load_rules(config.rules_dir), rule_id)
        records = _preview_records(record) if record else None
        shown = previews.render_preview(make_composer(config), rule, records, campaign_id=campaign)
    except (previews.RecordsRejectedError, TemplateError) as exc:
        # What the author asked to see cannot be shown: their input's fault, not the set-up's.
        raise fail(str(exc), code=1) from None
    for note in shown.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    text = previews.format_preview(shown, output_format.value)
    if out_path is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        out_path.write_text(text, encoding="utf-8")
        err.print(f"wrote {out_path}", highlight=False, markup=False, soft_wrap=True)
    if open_html:
        html_file, opened = previews.open_in_browser(
            shown, reuse=out_path, is_html=output_format == "html"
        )
        said = "opened" if opened else "no web browser found; the HTML is in"
        err.print(f"{said} {html_file}", highlight=False, markup=False, soft_wrap=True)


def _preview_records(source: str) -> list[Record]:
    from notifier.authoring.preview import accepted_records

    return accepted_records(open_records(source, received_at=utc_now()))


@app.command()
def carrier(
    number: Annotated[str, typer.Argument(help="The tracking number (spaces allowed).")],
    declared: Annotated[
        str | None,
        typer.Option("--carrier", help="The carrier the record names (it wins, as in delivery)."),
    ] = None,
) -> None:
    """Show which carrier a tracking number belongs to and its tracking link."""
    from notifier.core.carriers import identify

    found = identify(number, declared)
    for note in found.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    if found.carrier is None:
        raise fail(f"{number!r}: {found.how}", code=1)
    for label, value in (
        ("carrier", f"{found.carrier.name}  ({found.how})"),
        ("number", found.carrier.number),
        ("tracking", found.carrier.tracking_url),
    ):
        out.print(f"{label:<9} {value}", highlight=False, markup=False, soft_wrap=True)

"""`notifier check`: every rule x template x campaign override, all problems at once."""

from __future__ import annotations

from pathlib import Path

from notifier.compose import Composer
from notifier.errors import NotifierError, RuleError
from notifier.preview import preview_message, sample_records
from notifier.rendering import PARTS
from notifier.rules import Rule, load_rules
from notifier.settings import Settings
from notifier.wiring import engine_config, make_renderer


def campaign_overrides(templates_dir: Path, rule: Rule) -> list[str]:
    """Campaign ids with their own copy of this rule's templates (templates/<campaign>/<name>/)."""
    return sorted(
        folder.name
        for folder in templates_dir.iterdir()
        if folder.is_dir() and (folder / rule.template).is_dir()
    )


def check_all(settings: Settings) -> tuple[list[str], int]:
    """Return (problems, combinations checked)."""
    try:
        rules = load_rules(settings.rules_dir)
    except RuleError as exc:
        return str(exc).splitlines(), 0
    try:
        composer = Composer(make_renderer(settings), engine_config(settings))
    except NotifierError as exc:
        return [str(exc)], 0
    problems: list[str] = []
    checked = 0
    for rule in rules:
        for campaign in [None, *campaign_overrides(settings.templates_dir, rule)]:
            label = f"rule {rule.id}" + (f" (campaign {campaign})" if campaign else "")
            missing = [
                part
                for part in PARTS
                if not any(
                    (settings.templates_dir / name).is_file()
                    for name in composer.renderer.candidates(rule.template, part, campaign)
                )
            ]
            if missing:
                problems.append(f"{label}: template {rule.template!r} has no {', '.join(missing)}")
                continue
            checked += 1
            try:
                preview_message(composer, rule, sample_records(rule, campaign_id=campaign))
            except NotifierError as exc:
                problems.append(f"{label}: {exc}")
    return problems, checked

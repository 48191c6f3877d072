"""`notifier check`: every rule x template x campaign, all problems at once.

Each combination is rendered the way delivery renders it (the sample order through the
same composer), then each template part on its own so one broken part does not hide the
next, and the HTML is checked as a standalone document.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from notifier.authoring.html_check import email_html_problems
from notifier.authoring.preview import preview_message, preview_notice, sample_records
from notifier.core.rules import Rule, load_rules, operator_problems
from notifier.errors import NotifierError, RuleError, TemplateError
from notifier.rendering.campaigns import CAMPAIGN_FILE, load_campaigns
from notifier.rendering.compose import Composer
from notifier.rendering.renderer import PARTS
from notifier.rendering.setup import make_branding, make_renderer
from notifier.settings import Settings


def campaign_overrides(templates_dir: Path, rule: Rule) -> list[str]:
    """Campaign ids with their own copy of this rule's templates (templates/<campaign>/<name>/)."""
    return sorted(
        folder.name
        for folder in templates_dir.iterdir()
        if folder.is_dir() and (folder / rule.template).is_dir()
    )


def campaign_folders(templates_dir: Path, rules: Iterable[Rule]) -> list[Path]:
    """Top-level folders that are campaigns: not a rule's template, not a shared `_` folder."""
    templates = {rule.template for rule in rules}
    return sorted(
        folder
        for folder in templates_dir.iterdir()
        if folder.is_dir() and folder.name not in templates and not folder.name.startswith("_")
    )


def stray_overrides(templates_dir: Path, rules: Iterable[Rule]) -> list[str]:
    """Campaign subfolders that override no rule's template: a typo there is silently unused."""
    rules = list(rules)
    templates = {rule.template for rule in rules}
    problems = []
    for folder in campaign_folders(templates_dir, rules):
        children = [child for child in folder.iterdir() if not child.name.startswith("_")]
        if not any(child.is_dir() for child in children) and not (folder / CAMPAIGN_FILE).is_file():
            problems.append(
                f"{folder}: neither a rule's template folder nor a campaign "
                f"(no {CAMPAIGN_FILE}, no template overrides)"
            )
        for child in children:
            if child.is_dir() and child.name not in templates:
                known = ", ".join(sorted(templates)) or "none"
                problems.append(
                    f"{child}: overrides no rule's template (rules use: {known}); "
                    "it is never rendered"
                )
    return problems


def check_all(settings: Settings) -> tuple[list[str], int]:
    """Return (every problem found, rule/campaign combinations checked)."""
    try:
        rules = load_rules(settings.rules_dir)
    except RuleError as exc:
        return str(exc).splitlines(), 0
    problems: list[str] = operator_problems(rules, settings.operator_email)
    try:
        campaigns = load_campaigns(settings.templates_dir)
    except NotifierError as exc:
        problems += str(exc).splitlines()
        campaigns = {}
    try:
        composer = Composer(make_renderer(settings), make_branding(settings, campaigns=campaigns))
    except NotifierError as exc:
        return [*problems, str(exc)], 0
    problems += stray_overrides(settings.templates_dir, rules)
    folders = campaign_folders(settings.templates_dir, rules)
    checked = 0
    for rule in rules:
        overrides = campaign_overrides(settings.templates_dir, rule)
        every = {None, *overrides, *campaigns, *(f.name for f in folders)}
        for campaign in sorted(every, key=lambda c: c or ""):
            label = f"rule {rule.id}" + (f" (campaign {campaign})" if campaign else "")
            checked += 1
            problems += [f"{label}: {p}" for p in check_one(composer, rule, campaign)]
    return problems, checked


def check_one(composer: Composer, rule: Rule, campaign: str | None) -> list[str]:
    """Every problem of one rule rendered for one campaign (None: no campaign)."""
    renderer = composer.renderer
    missing = [
        part
        for part in PARTS
        if not any(
            (renderer.templates_dir / name).is_file()
            for name in renderer.candidates(rule.template, part, campaign)
        )
    ]
    if missing:
        return [f"template {rule.template!r} has no {', '.join(missing)}"]
    records = sample_records(rule, campaign_id=campaign)
    problems = []
    try:
        preview_message(composer, rule, records)  # the whole delivery path, headers included
    except TemplateError:
        pass  # rendering each part below says precisely what is wrong, part by part
    except NotifierError as exc:
        problems.append(str(exc))
    notice, order = preview_notice(rule, records)
    context = composer.context(notice, rule, order)
    for part in PARTS:
        try:
            rendered = renderer.render_part(rule.template, part, context, campaign_id=campaign)
        except NotifierError as exc:
            problems.append(str(exc))
            continue
        if part == "body.html":
            where = renderer.candidates(rule.template, part, campaign)
            source = next(n for n in where if (renderer.templates_dir / n).is_file())
            problems += [
                f"{renderer.templates_dir / source}: HTML that mail clients will mangle: {problem}"
                for problem in email_html_problems(rendered)
            ]
    return problems

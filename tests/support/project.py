"""Paths and builders the integration tests share."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from notifier.rendering.branding import Branding
from notifier.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
# The sender and shop the tests' engines compose with.
BRANDING = Branding(
    mail_from="Example Store <orders@example.com>",
    shop={"name": "Example Store", "support_email": "support@example.com"},
)
TEMPLATES = ROOT / "templates"


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings on a fresh SQLite file in tmp_path, the project's rules and templates."""
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'notifier.db'}",
        "outbox_dir": tmp_path / "outbox",
        "rules_dir": RULES,
        "templates_dir": TEMPLATES,
        "smtp_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def smtp_settings(tmp_path: Path, host: str, port: int, **overrides: Any) -> Settings:
    return settings_for(tmp_path, transport="smtp", smtp_host=host, smtp_port=port, **overrides)


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def env_for(settings: Settings) -> dict[str, str]:
    """The NOTIFIER_* variables that reproduce these settings in a child process."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"NOTIFIER_{name.upper()}"] = str(value)
    return env


def switched_on(tmp_path: Path, *rule_ids: str, others: bool = True) -> Path:
    """A copy of the project's rules folder with these built-in rules switched on (they ship
    `enabled = false`); with `others=False`, only these rules."""
    folder = tmp_path / "rules"
    if others:
        shutil.copytree(RULES, folder)
    else:
        folder.mkdir()
    for rule_id in rule_ids:
        text = (RULES / f"{rule_id}.toml").read_text()
        (folder / f"{rule_id}.toml").write_text(text.replace("enabled = false", "enabled = true"))
    return folder

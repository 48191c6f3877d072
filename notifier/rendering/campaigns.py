"""Per-campaign sender and store details: `templates/<campaign_id>/campaign.toml`.

A campaign is often a separate storefront with its own brand, so it mails from its own
name and address. The file sits beside the campaign's template overrides, so everything
a campaign looks like lives in one folder:

    mail_from = "Maple & Pine <orders@mapleandpine.example>"
    store_name = "Maple & Pine"
    support_email = "help@mapleandpine.example"
    store_url = "https://mapleandpine.example"

Every key is optional; what a campaign leaves out comes from the settings. The files are
read once at start (like settings) and handed down inside `Branding`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from notifier.core.toml_files import parse_toml
from notifier.errors import ConfigError

CAMPAIGN_FILE = "campaign.toml"


@dataclass(frozen=True, slots=True)
class Campaign:
    """One campaign's own sender and store details; None means "use the settings"."""

    id: str
    mail_from: str | None = None
    store_name: str | None = None
    support_email: str | None = None
    store_url: str | None = None
    source: str = ""

    def shop(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """The `store` template variable for this campaign, on top of the global one."""
        info = dict(defaults)
        for key, value in (
            ("name", self.store_name),
            ("support_email", self.support_email),
            ("url", self.store_url),
        ):
            if value is not None:
                info[key] = value
        return info


class _CampaignFile(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    mail_from: str | None = None
    store_name: str | None = None
    support_email: str | None = None
    store_url: str | None = None

    @field_validator("mail_from", "support_email")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if any(c in value for c in "\r\n"):
            raise ValueError("must be one line")
        address = parseaddr(value)[1]
        if "@" not in address or not address.rpartition("@")[2]:
            raise ValueError(f"{value!r} has no email address (write 'Name <user@domain>')")
        return value


def parse_campaign(text: str, *, campaign_id: str, source: str) -> Campaign:
    """Parse one campaign file; ConfigError names the file and the key."""
    parsed = parse_toml(text, _CampaignFile, source=source, noun="key")
    return Campaign(id=campaign_id, **parsed.model_dump(), source=source)


def load_campaigns(templates_dir: Path) -> dict[str, Campaign]:
    """Every `<templates>/<campaign_id>/campaign.toml`; all broken files reported at once."""
    campaigns: dict[str, Campaign] = {}
    problems: list[str] = []
    if not templates_dir.is_dir():
        return campaigns
    for path in sorted(templates_dir.glob(f"*/{CAMPAIGN_FILE}")):
        campaign_id = path.parent.name
        try:
            campaigns[campaign_id] = parse_campaign(
                path.read_text(encoding="utf-8"), campaign_id=campaign_id, source=str(path)
            )
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    return campaigns

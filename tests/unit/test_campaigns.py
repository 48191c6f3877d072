"""Per-campaign sender and store details from templates/<campaign_id>/campaign.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifier.errors import ConfigError
from notifier.rendering.campaigns import Campaign, load_campaigns, parse_campaign
from notifier.rendering.setup import make_branding
from notifier.settings import Settings


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "campaign.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_campaign_file_sets_sender_and_store(tmp_path: Path) -> None:
    """Every key of campaign.toml is read; what it leaves out falls back to the defaults."""
    write(tmp_path / "12", 'mail_from = "Maple <orders@maple.example>"\nstore_name = "Maple"\n')
    write(tmp_path / "15", 'support_email = "help@fifteen.example"\n')
    (tmp_path / "tracking_number_assigned").mkdir()
    campaigns = load_campaigns(tmp_path)
    assert sorted(campaigns) == ["12", "15"]
    assert campaigns["12"].mail_from == "Maple <orders@maple.example>"
    defaults = {"name": "Example", "support_email": "s@example.com", "url": None}
    assert campaigns["12"].shop(defaults) == {**defaults, "name": "Maple"}
    assert campaigns["15"].shop(defaults)["support_email"] == "help@fifteen.example"
    assert campaigns["15"].mail_from is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('mail_from = "Maple"', "key 'mail_from'"),
        ('mail_from = "Maple <orders@maple.example>\\nBcc: x@y.z"', "must be one line"),
        ('sender = "a@b.c"', "key 'sender'"),
        ("mail_from = ", "not valid TOML"),
    ],
)
def test_bad_campaign_file_names_file_and_key(text: str, problem: str) -> None:
    """A broken campaign file is a ConfigError naming the file and what is wrong."""
    with pytest.raises(ConfigError) as caught:
        parse_campaign(text, campaign_id="12", source="templates/12/campaign.toml")
    assert str(caught.value).startswith("templates/12/campaign.toml: ")
    assert problem in str(caught.value)


def test_all_broken_campaign_files_are_reported_at_once(tmp_path: Path) -> None:
    """Two broken files: one error listing both."""
    first = write(tmp_path / "12", "nope = 1\n")
    second = write(tmp_path / "15", 'mail_from = "x"\n')
    with pytest.raises(ConfigError) as caught:
        load_campaigns(tmp_path)
    assert str(first) in str(caught.value) and str(second) in str(caught.value)


def test_branding_carries_campaign_senders(tmp_path: Path) -> None:
    """wiring.make_branding loads the campaign files once into senders and shop details."""
    write(tmp_path / "12", 'mail_from = "Maple <orders@maple.example>"\nstore_name = "Maple"\n')
    settings = Settings(_env_file=None, templates_dir=tmp_path)  # type: ignore[call-arg]
    branding = make_branding(settings)
    assert branding.sender_for("12") == "Maple <orders@maple.example>"
    assert branding.sender_for("99") == settings.mail_from
    assert branding.shop_for("12")["name"] == "Maple"
    assert branding.shop_for("12")["support_email"] == settings.support_email
    assert branding.shop_for(None)["name"] == settings.store_name
    # Message-IDs keep the global domain: a campaign's sender change never re-keys a notice.
    assert branding.message_id_domain == "example.com"
    explicit = make_branding(settings, campaigns={"7": Campaign("7", store_name="Seven")})
    assert explicit.shop_for("7")["name"] == "Seven" and "12" not in explicit.campaign_senders

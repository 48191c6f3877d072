"""The rendering parts built from settings: renderer, branding, composer.

Shared by the engine's wiring (notifier.processes.wiring), preview and check, which render
without a store or a transport.
"""

from __future__ import annotations

from collections.abc import Mapping

from notifier.errors import ConfigError
from notifier.rendering.branding import Branding
from notifier.rendering.campaigns import Campaign, load_campaigns
from notifier.rendering.compose import Composer
from notifier.rendering.renderer import Renderer
from notifier.settings import Settings


def make_branding(
    settings: Settings, *, campaigns: Mapping[str, Campaign] | None = None
) -> Branding:
    """Sender and shop details; `campaigns` defaults to the templates' campaign files."""
    shop = {
        "name": settings.store_name,
        "support_email": settings.support_email,
        "url": settings.store_url,
    }
    # Read once here, like the settings: templates/<campaign_id>/campaign.toml.
    if campaigns is None:
        campaigns = load_campaigns(settings.templates_dir)
    return Branding(
        mail_from=settings.mail_from,
        shop=shop,
        campaign_senders={cid: c.mail_from for cid, c in campaigns.items() if c.mail_from},
        campaign_shops={cid: c.shop(shop) for cid, c in campaigns.items()},
        bounce_address=_bounce_address(settings.bounce_address),
    )


def _bounce_address(value: str | None) -> str | None:
    if not value:
        return None
    local, at, domain = value.strip().rpartition("@")
    if not at or not local or not domain or "+" in local or any(c.isspace() for c in value):
        raise ConfigError(
            f"NOTIFIER_BOUNCE_ADDRESS: {value!r} is not a bare address such as"
            " bounces@shop.example (no name, no '+': notifier adds each notice's token)"
        )
    return value.strip()


def make_renderer(settings: Settings) -> Renderer:
    if not settings.templates_dir.is_dir():
        raise ConfigError(
            f"templates folder {settings.templates_dir} does not exist (set NOTIFIER_TEMPLATES_DIR)"
        )
    return Renderer(settings.templates_dir)


def make_composer(settings: Settings) -> Composer:
    """The composer delivery uses, without a store or transport: for preview and check."""
    return Composer(make_renderer(settings), make_branding(settings))

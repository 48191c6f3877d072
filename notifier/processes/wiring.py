"""Build the engine from settings: the one place that picks store, transport, rules, templates."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta

from notifier.core.durations import parse_duration
from notifier.core.quiet_hours import QuietHours
from notifier.core.rules import load_rules
from notifier.engine import Clock, Engine, EngineConfig, Observer, utc_now
from notifier.errors import ConfigError
from notifier.rendering.campaigns import Campaign, load_campaigns
from notifier.rendering.compose import Composer
from notifier.rendering.renderer import Renderer
from notifier.settings import Settings
from notifier.settings.project_file import NotifierConfig, load_config
from notifier.store.sql import SqlStore
from notifier.transports import Transport
from notifier.transports.file import FileTransport


def make_transport(settings: Settings) -> Transport:
    if settings.transport == "file":
        return FileTransport(settings.outbox_dir)
    from notifier.transports.smtp import SmtpTransport

    return SmtpTransport(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        tls=settings.smtp_tls,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        connections=settings.smtp_connections,
        timeout=settings.smtp_timeout,
    )


def engine_config(
    settings: Settings,
    *,
    campaigns: Mapping[str, Campaign] | None = None,
    quiet_hours: QuietHours | None = None,
) -> EngineConfig:
    """The engine's configuration; `campaigns` defaults to the templates' campaign files.

    Without `quiet_hours` (notifier.toml's, read by the caller) notices are due when their
    rule says: rendering (preview, check) does not need them.
    """
    store_info = {
        "name": settings.store_name,
        "support_email": settings.support_email,
        "url": settings.store_url,
    }
    # Read once here, like the settings: templates/<campaign_id>/campaign.toml.
    if campaigns is None:
        campaigns = load_campaigns(settings.templates_dir)
    return EngineConfig(
        mail_from=settings.mail_from,
        store_info=store_info,
        senders={cid: c.mail_from for cid, c in campaigns.items() if c.mail_from},
        campaign_store_info={cid: c.store_info(store_info) for cid, c in campaigns.items()},
        lease=timedelta(seconds=settings.lease_seconds),
        claim_batch=max(16, settings.smtp_connections * 16),
        due_adjuster=quiet_hours if quiet_hours is not None and quiet_hours.enabled else None,
        max_in_flight=settings.smtp_connections,
        future_tolerance=parse_duration(settings.future_tolerance),
        operator_email=settings.operator_email or None,
    )


def make_renderer(settings: Settings) -> Renderer:
    if not settings.templates_dir.is_dir():
        raise ConfigError(
            f"templates folder {settings.templates_dir} does not exist (set NOTIFIER_TEMPLATES_DIR)"
        )
    return Renderer(settings.templates_dir)


def make_composer(settings: Settings) -> Composer:
    """The composer delivery uses, without a store or transport: for preview and check."""
    return Composer(make_renderer(settings), engine_config(settings))


@contextmanager
def open_engine(
    settings: Settings,
    *,
    notifier_config: NotifierConfig | None = None,
    observer: Observer | None = None,
    clock: Clock = utc_now,
) -> Iterator[Engine]:
    """An engine on the configured store; the caller closes the transport (it is async).

    `notifier_config` is notifier.toml as the entry point read it; without it the file is
    read here, so that a process that also needs its jobs reads it once and passes it.
    """
    if notifier_config is None:
        notifier_config = load_config(settings)
    rules = load_rules(settings.rules_dir)
    renderer = make_renderer(settings)
    store = SqlStore(settings.database_url)
    try:
        yield Engine(
            store=store,
            transport=make_transport(settings),
            rules=rules,
            renderer=renderer,
            config=engine_config(settings, quiet_hours=notifier_config.quiet_hours),
            observer=observer,
            clock=clock,
        )
    finally:
        store.close()

"""Build the engine from settings: the one place that picks store, transport, rules, templates."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from notifier.engine import Engine, EngineConfig, Observer
from notifier.errors import ConfigError
from notifier.rendering import Renderer
from notifier.rules import load_rules
from notifier.settings import Settings
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


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        mail_from=settings.mail_from,
        store_info={
            "name": settings.store_name,
            "support_email": settings.support_email,
            "url": settings.store_url,
        },
        lease=timedelta(seconds=settings.lease_seconds),
        claim_batch=max(16, settings.smtp_connections * 16),
        max_in_flight=settings.smtp_connections,
    )


def make_renderer(settings: Settings) -> Renderer:
    if not settings.templates_dir.is_dir():
        raise ConfigError(
            f"templates folder {settings.templates_dir} does not exist (set NOTIFIER_TEMPLATES_DIR)"
        )
    return Renderer(settings.templates_dir)


@contextmanager
def open_engine(settings: Settings, *, observer: Observer | None = None) -> Iterator[Engine]:
    """An engine on the configured store; the caller closes the transport (it is async)."""
    rules = load_rules(settings.rules_dir)
    renderer = make_renderer(settings)
    store = SqlStore(settings.database_url)
    try:
        yield Engine(
            store=store,
            transport=make_transport(settings),
            rules=rules,
            renderer=renderer,
            config=engine_config(settings),
            observer=observer,
        )
    finally:
        store.close()

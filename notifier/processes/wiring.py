"""Build the engine from settings: the one place that picks store, transport, rules, templates."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta

from notifier.core.durations import parse_duration
from notifier.core.feedback import SuppressionPolicy
from notifier.core.quiet_hours import QuietHours
from notifier.core.rules import load_rules
from notifier.engine import Clock, Engine, EngineConfig, Observer, utc_now
from notifier.engine.feedback import FeedbackIntake
from notifier.processes.project_file import ProjectFile, load_project_file
from notifier.rendering.campaigns import Campaign
from notifier.rendering.setup import make_branding, make_renderer
from notifier.settings import Settings
from notifier.store.sql import SqlStore, inline_writer
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
    return EngineConfig(
        branding=make_branding(settings, campaigns=campaigns),
        lease=timedelta(seconds=settings.lease_seconds),
        claim_batch=max(16, settings.smtp_connections * 16),
        due_adjuster=quiet_hours if quiet_hours is not None and quiet_hours.enabled else None,
        # Twice the connections: sends then wait in the transport, to be chained (a waiting
        # send's envelope written with the content before it) when a connection frees.
        max_in_flight=2 * settings.smtp_connections,
        future_tolerance=parse_duration(settings.future_tolerance),
        operator_email=settings.operator_email or None,
        sent_copy_retention=parse_duration(settings.sent_copy_retention),
    )


@contextmanager
def open_engine(
    settings: Settings,
    *,
    project_file: ProjectFile | None = None,
    observer: Observer | None = None,
    clock: Clock = utc_now,
) -> Iterator[Engine]:
    """An engine on the configured store; the caller closes the transport (it is async).

    `project_file` is notifier.toml as the entry point read it; without it the file is
    read here, so that a process that also needs its jobs reads it once and passes it.
    """
    if project_file is None:
        project_file = load_project_file(settings)
    rules = load_rules(settings.rules_dir)
    renderer = make_renderer(settings)
    store = SqlStore(settings.database_url)
    try:
        yield Engine(
            store=store,
            transport=make_transport(settings),
            rules=rules,
            renderer=renderer,
            config=engine_config(settings, quiet_hours=project_file.quiet_hours),
            observer=observer,
            clock=clock,
            inline_writer=inline_writer(store),
        )
    finally:
        store.close()


def feedback_intake(settings: Settings, engine: Engine) -> FeedbackIntake:
    """The delivery-feedback intake on the engine's store and clock, policy from the settings."""
    return FeedbackIntake(
        engine.store,
        policy=SuppressionPolicy(
            on_permanent_bounce=settings.feedback_suppress_permanent,
            on_complaint=settings.feedback_suppress_complaints,
            transient_limit=settings.feedback_transient_limit,
            transient_window=parse_duration(settings.feedback_transient_window),
        ),
        match_window=parse_duration(settings.feedback_match_window),
        message_id_domain=engine.config.branding.message_id_domain,
        clock=engine.clock,
    )

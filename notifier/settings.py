"""Settings: read once at the entry point (environment, then `.env`) and passed down."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from notifier.core.durations import parse_duration
from notifier.errors import ConfigError


def _duration(value: str) -> str:
    parse_duration(value)  # a bad one is refused at start-up, naming the variable
    return value


# "5m", "1h30m", as in rule files; kept as written so the settings print back as given.
Duration = Annotated[str, AfterValidator(_duration)]


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return value


Regex = Annotated[str, AfterValidator(_regex)]


class Settings(BaseSettings):
    """Every NOTIFIER_* variable; see the README's settings table."""

    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///notifier.db"
    transport: Literal["file", "smtp"] = "file"
    outbox_dir: Path = Path("outbox")
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_connections: int = Field(default=4, ge=1, le=64)
    smtp_timeout: float = Field(default=30.0, gt=0)
    mail_from: str = "Example Store <orders@example.com>"
    store_name: str = "Example Store"
    support_email: str | None = "support@example.com"
    # Where rules with to = "operator" send (a rule to the operator without it: no start).
    operator_email: str | None = None
    store_url: str | None = None
    rules_dir: Path = Path("rules")
    templates_dir: Path = Path("templates")
    lease_seconds: int = Field(default=300, ge=5)
    # How often an idle worker looks for due notices it was not told about. Default: 5 s on
    # SQLite; 60 s on PostgreSQL, where LISTEN/NOTIFY wakes workers at once.
    poll_seconds: float | None = Field(default=None, gt=0)
    # After SIGTERM/SIGINT, how long `serve`, `worker` and `schedule` give the requests, jobs
    # and sends in hand to finish (notifier.processes.lifecycle). Below the 30 s most
    # supervisors wait before SIGKILL, so the claims are released in time.
    shutdown_grace: float = Field(default=25.0, ge=0)
    log_level: str = "WARNING"
    # A record dated later than its receipt by more than this is taken as received now.
    future_tolerance: Duration = "5m"
    # The preview page (/preview) is off unless this is set, and then requires it.
    preview_token: SecretStr | None = None
    # The operator console (/console) and the notices API (/v1/notices) are off unless the
    # first is set; it gives full access, the viewer token read-only access.
    console_token: SecretStr | None = None
    console_viewer_token: SecretStr | None = None
    # How long the exact bytes of each sent email are kept (compressed) for the console.
    sent_copy_retention: Duration = "30d"
    # Scheduled runs (README "Scheduled runs"): the config file, and jobs from the environment.
    config: Path | None = None
    drop_dir: Path | None = None
    drop_interval: str = "1m"
    konnektive_url: str = "https://api.konnektive.com"
    konnektive_login_id: str | None = None
    konnektive_password: SecretStr | None = None
    konnektive_timezone: str = "UTC"
    konnektive_interval: str = "15m"
    # The bounce mailbox's credentials (`mailbox` jobs in notifier.toml, unless a job names
    # other variables with `username_env` / `password_env`).
    mailbox_username: str | None = None
    mailbox_password: SecretStr | None = None
    # notifier serve (webhook ingestion)
    serve_host: str = "127.0.0.1"
    serve_port: int = Field(default=8000, ge=0, le=65535)
    webhook_secret: SecretStr | None = None  # comma-separated: several while rotating
    webhook_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    postback_token: SecretStr | None = None
    postback_fields: dict[str, str] = Field(default_factory=dict)  # incoming name -> field
    # Delivery feedback (notifier.engine.feedback): what suppresses an address, and how far back
    # an event without a Message-ID looks for the latest notice sent to its recipient.
    feedback_suppress_permanent: bool = True
    feedback_suppress_complaints: bool = True
    feedback_transient_limit: int = Field(default=3, ge=0)  # 0: transient bounces never do
    feedback_transient_window: Duration = "7d"
    feedback_match_window: Duration = "7d"
    # VERP: with "bounces@shop.example", each notice's envelope sender is
    # bounces+<token>@shop.example, so a bounce without the original headers maps back.
    bounce_address: str | None = None
    # Delivery feedback from the mail providers' webhooks (README "Delivery feedback:
    # provider webhooks"); each endpoint answers 404 until its settings are given.
    # Amazon SES through SNS: the topics accepted (comma-separated ARNs), and where SNS
    # signing certificates may come from (anything else could sign with its own).
    ses_topic_arns: str | None = None
    ses_cert_url_pattern: Regex = r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"
    postmark_webhook_user: str | None = None  # HTTP Basic auth Postmark is told to send
    postmark_webhook_password: SecretStr | None = None
    # Base64 DER public key shown under SendGrid's Signed Event Webhook.
    sendgrid_webhook_public_key: str | None = None
    mailgun_signing_key: SecretStr | None = None  # the domain's HTTP webhook signing key


def load_settings() -> Settings:
    """Read the settings, turning validation errors into one readable ConfigError."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"NOTIFIER_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None

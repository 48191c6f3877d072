"""What the feedback webhooks need from the settings, read once; a provider left out is off."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from notifier.http.feedback.sendgrid import load_public_key
from notifier.settings import Settings

# How long fetching an SNS signing certificate (or confirming a subscription) may take: SNS
# waits about 15 s for an answer, and a request holds its slot meanwhile.
SNS_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class SesConfig:
    topic_arns: frozenset[str]
    cert_url_pattern: re.Pattern[str]
    timeout: float = SNS_TIMEOUT_SECONDS


@dataclass(frozen=True, slots=True)
class PostmarkConfig:
    user: str
    password: str


@dataclass(frozen=True, slots=True)
class FeedbackConfig:
    """Each provider's verification settings, or None where the provider is not set up."""

    max_bytes: int
    ses: SesConfig | None = None
    postmark: PostmarkConfig | None = None
    sendgrid_key: ec.EllipticCurvePublicKey | None = None
    mailgun_key: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedbackConfig:
        """ConfigError for a SendGrid key that is not one (at start, not at the first event)."""
        topics = frozenset(
            arn for part in (settings.ses_topic_arns or "").split(",") if (arn := part.strip())
        )
        password = _secret(settings.postmark_webhook_password)
        user = (settings.postmark_webhook_user or "").strip()
        key = (settings.sendgrid_webhook_public_key or "").strip()
        return cls(
            max_bytes=settings.webhook_max_bytes,
            ses=SesConfig(topics, re.compile(settings.ses_cert_url_pattern)) if topics else None,
            postmark=PostmarkConfig(user, password) if user and password else None,
            sendgrid_key=load_public_key(key) if key else None,
            mailgun_key=_secret(settings.mailgun_signing_key) or None,
        )


def _secret(value: object) -> str:
    get = getattr(value, "get_secret_value", None)
    return str(get()).strip() if get is not None else ""

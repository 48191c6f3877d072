"""The feedback webhooks' routes: verify the provider's way, parse, hand to the intake.

Each endpoint answers 404 while its provider is not configured, 401 for anything it cannot
verify (no or wrong signature or credentials, a stale time, a replayed token, an SNS
certificate from outside the allowed URLs), 413 past NOTIFIER_WEBHOOK_MAX_BYTES, 422 for an
authentic body that is not the provider's shape, and 503 (with Retry-After) when the ledger
or SNS cannot be reached — never 500. Events for messages the ledger does not know are
answered 200 and counted as unmatched: providers retry anything else for days.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from notifier.engine.feedback import FeedbackIntake, FeedbackReport
from notifier.errors import StoreError
from notifier.http.body import HttpProblem, Problem, decode_json_text, read_body
from notifier.http.feedback import mailgun, postmark, sendgrid, ses
from notifier.http.feedback.common import Parsed, PayloadInvalid, Unverified
from notifier.http.feedback.config import FeedbackConfig
from notifier.http.feedback.openapi import BODIES
from notifier.http.feedback.sns import (
    NOTIFICATION,
    SUBSCRIPTION_CONFIRMATION,
    SnsMessage,
    SnsUnreachable,
    SnsVerifier,
    loads_message,
)

log = logging.getLogger("notifier.http.feedback")

RETRY_AFTER = "30"


class FeedbackAccepted(BaseModel):
    """The request's events are stored (or were already)."""

    received: int = Field(description="feedback events in the request")
    stored: int = Field(description="events stored now")
    duplicates: int = Field(description="events received before (a provider's redelivery)")
    unmatched: int = Field(description="stored, but tied to no notice notifier sent")
    ignored: int = Field(description="the provider's records that are not feedback (opens…)")
    matched: dict[str, int] = Field(description="events tied to a notice, by how")
    suppressed: int = Field(description="addresses suppressed because of these events")
    note: str | None = Field(default=None, description="e.g. that a subscription was confirmed")


_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "unverified: signature, credentials or time"},
    404: {"model": Problem, "description": "this provider is not configured"},
    413: {"model": Problem, "description": "body larger than NOTIFIER_WEBHOOK_MAX_BYTES"},
    422: {"model": Problem, "description": "authentic, but not the provider's payload"},
    503: {"model": Problem, "description": "the ledger (or SNS) is unavailable: retry later"},
}

SendgridSignature = Annotated[
    str | None, Header(alias=sendgrid.SIGNATURE_HEADER, description="base64 DER ECDSA signature")
]
SendgridTimestamp = Annotated[
    str | None, Header(alias=sendgrid.TIMESTAMP_HEADER, description="unix seconds, signed")
]


def feedback_router(
    config: FeedbackConfig, *, intake: FeedbackIntake, clock: Callable[[], datetime]
) -> APIRouter:
    """POST /v1/feedback/{ses,postmark,sendgrid,mailgun}."""
    router = APIRouter(tags=["feedback"])
    verifier = (
        SnsVerifier(
            topic_arns=config.ses.topic_arns,
            cert_url_pattern=config.ses.cert_url_pattern,
            timeout=config.ses.timeout,
        )
        if config.ses is not None
        else None
    )
    tokens = mailgun.TokenLedger()

    async def take(provider: str, parsed: Parsed) -> Response:
        if not parsed.events:
            return _answer(parsed, None)
        try:
            report = await run_in_threadpool(intake.take, parsed.events)
        except StoreError as exc:
            log.error("%s feedback not stored: %s", provider, exc)
            raise HttpProblem(
                503,
                "the store is unavailable; nothing was stored, retry later",
                headers={"Retry-After": RETRY_AFTER},
            ) from None
        return _answer(parsed, report)

    doc: dict[str, Any] = {"response_model": FeedbackAccepted, "responses": _PROBLEMS}

    @router.post(
        "/v1/feedback/ses",
        summary="Amazon SES feedback through SNS",
        openapi_extra=BODIES["ses"],
        **doc,
    )
    async def ses_feedback(request: Request) -> Response:
        """An SNS message: a subscription to confirm, or an SES notification or event."""
        if verifier is None:
            raise _off("SES", "NOTIFIER_SES_TOPIC_ARNS")
        body = await read_body(request, config.max_bytes)
        with _refusals():
            message = SnsMessage.from_body(body)
            try:
                await verifier.verify(message, now=clock())
                if message.type == SUBSCRIPTION_CONFIRMATION:
                    await verifier.confirm(message)
            except SnsUnreachable as exc:
                log.warning("SNS unreachable: %s", exc)
                raise HttpProblem(
                    503, f"could not reach SNS: {exc}", headers={"Retry-After": RETRY_AFTER}
                ) from None
            if message.type == SUBSCRIPTION_CONFIRMATION:
                log.warning("confirmed the SNS subscription to %s", message.topic_arn)
                return _answer(Parsed((), note=f"subscribed to {message.topic_arn}"), None)
            if message.type != NOTIFICATION:
                return _answer(Parsed((), note=f"{message.type} for {message.topic_arn}"), None)
            parsed = ses.parse_notification(loads_message(message), payload=message.message)
        return await take("ses", parsed)

    @router.post(
        "/v1/feedback/postmark",
        summary="Postmark bounce, spam complaint and delivery webhooks",
        openapi_extra=BODIES["postmark"],
        **doc,
    )
    async def postmark_feedback(request: Request) -> Response:
        """One Postmark webhook record, with the HTTP Basic credentials Postmark was given."""
        if config.postmark is None:
            raise _off("Postmark", "NOTIFIER_POSTMARK_WEBHOOK_USER and _PASSWORD")
        with _refusals():
            postmark.check_basic_auth(
                request.headers.get("authorization"),
                user=config.postmark.user,
                password=config.postmark.password,
            )
        body = await read_body(request, config.max_bytes)
        value, text = decode_json_text(body)
        with _refusals():
            parsed = postmark.parse_record(value, payload=text)
        return await take("postmark", parsed)

    @router.post(
        "/v1/feedback/sendgrid",
        summary="SendGrid signed Event Webhook",
        openapi_extra=BODIES["sendgrid"],
        **doc,
    )
    async def sendgrid_feedback(
        request: Request,
        signature: SendgridSignature = None,
        timestamp: SendgridTimestamp = None,
    ) -> Response:
        """A JSON array of SendGrid events, signed with the webhook's ECDSA key."""
        if config.sendgrid_key is None:
            raise _off("SendGrid", "NOTIFIER_SENDGRID_WEBHOOK_PUBLIC_KEY")
        body = await read_body(request, config.max_bytes)
        with _refusals():
            sendgrid.verify(
                config.sendgrid_key,
                signature=signature,
                timestamp=timestamp,
                body=body,
                now=clock(),
            )
        value, _ = decode_json_text(body)
        with _refusals():
            parsed = sendgrid.parse_events(value)
        return await take("sendgrid", parsed)

    @router.post(
        "/v1/feedback/mailgun",
        summary="Mailgun webhooks (failed, complained, delivered)",
        openapi_extra=BODIES["mailgun"],
        **doc,
    )
    async def mailgun_feedback(request: Request) -> Response:
        """One Mailgun event with its signature object."""
        if config.mailgun_key is None:
            raise _off("Mailgun", "NOTIFIER_MAILGUN_SIGNING_KEY")
        body = await read_body(request, config.max_bytes)
        try:
            value, text = decode_json_text(body)
        except HttpProblem as problem:  # the signature is in the body: nothing to verify
            raise HttpProblem(401, f"no Mailgun signature: {problem.detail}") from None
        with _refusals():
            mailgun.verify(value, key=config.mailgun_key, tokens=tokens, now=clock())
            parsed = mailgun.parse_event(value, payload=text)
        return await take("mailgun", parsed)

    return router


@contextmanager
def _refusals() -> Iterator[None]:
    """Unverified -> 401, PayloadInvalid -> 422, as problem documents."""
    try:
        yield
    except Unverified as exc:
        raise HttpProblem(401, str(exc)) from None
    except PayloadInvalid as exc:
        raise HttpProblem(422, str(exc)) from None


def _off(provider: str, settings: str) -> HttpProblem:
    return HttpProblem(404, f"the {provider} feedback webhook is off: set {settings}")


def _answer(parsed: Parsed, report: FeedbackReport | None) -> Response:
    body = FeedbackAccepted(
        received=len(parsed.events),
        stored=report.stored if report else 0,
        duplicates=report.duplicates if report else 0,
        unmatched=report.unmatched if report else 0,
        ignored=parsed.ignored,
        matched={by.value: n for by, n in report.matched.items() if n} if report else {},
        suppressed=len(report.suppressed) if report else 0,
        note=parsed.note,
    )
    return JSONResponse(body.model_dump(exclude_none=True))

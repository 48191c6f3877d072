"""Webhook signatures: `X-Notifier-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`.

The signed message is `"<t>." + raw body` under a shared secret. The timestamp bounds
replays to a window; several `v1=` values and several secrets let a sender and a receiver
rotate secrets without a moment where either side's requests fail.

    header = sign(body, secret, int(time.time()))
    verify(header, body, secrets, now=time.time())   # raises SignatureInvalid
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from functools import lru_cache

from notifier.errors import NotifierError

SIGNATURE_HEADER = "X-Notifier-Signature"
TOLERANCE_SECONDS = 300
# Bounds on what we are willing to look at before rejecting: a header is a few hundred bytes.
_MAX_HEADER_LENGTH = 2048
_MAX_SIGNATURES = 8
_HEX_DIGITS = frozenset("0123456789abcdef")
MISSING_SECRET = (
    "NOTIFIER_WEBHOOK_SECRET is not set: without it anyone who can reach the server could"
    " trigger customer emails (use --insecure only for local trials)"
)


class SignatureInvalid(NotifierError):
    """The request's signature is missing, malformed, wrong or outside the time window."""


def split_secrets(value: str) -> tuple[str, ...]:
    """`"new,old"` -> `("new", "old")`: every secret that currently verifies a request."""
    return tuple(secret for part in value.split(",") if (secret := part.strip()))


def signature(body: bytes, secret: str, t: int) -> str:
    """The hex HMAC-SHA256 of `"<t>." + body` under `secret`."""
    mac = _keyed(secret).copy()
    mac.update(b"%d." % t)
    mac.update(body)
    return mac.hexdigest()


@lru_cache(maxsize=16)
def _keyed(secret: str) -> hmac.HMAC:
    """HMAC-SHA256 keyed with `secret`, copied for each message: keying it (padding the key,
    hashing both pads) was half of every request's signature check."""
    return hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)


def sign(body: bytes, secret: str, t: int) -> str:
    """The header value a sender puts in X-Notifier-Signature."""
    return f"t={t},v1={signature(body, secret, t)}"


def parse_header(header: str) -> tuple[int, list[str]]:
    """The timestamp and the v1 signatures of a header; SignatureInvalid when malformed."""
    if len(header) > _MAX_HEADER_LENGTH:
        raise SignatureInvalid(f"{SIGNATURE_HEADER} is longer than {_MAX_HEADER_LENGTH} bytes")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureInvalid(f"{SIGNATURE_HEADER} is malformed: expected t=...,v1=...")
        if name == "t":
            if timestamp is not None:
                raise SignatureInvalid(f"{SIGNATURE_HEADER} has more than one t=")
            if not (value.isascii() and value.isdigit()) or len(value) > 12:
                raise SignatureInvalid(f"{SIGNATURE_HEADER} t= is not a unix time in seconds")
            timestamp = int(value)
        elif name == "v1":
            lowered = value.lower()
            if len(lowered) != 64 or not set(lowered) <= _HEX_DIGITS:
                raise SignatureInvalid(f"{SIGNATURE_HEADER} v1= is not a hex SHA-256 HMAC")
            candidates.append(lowered)
        # Other schemes (v0=, v2=) are ignored, so senders can add one before we know it.
    if timestamp is None:
        raise SignatureInvalid(f"{SIGNATURE_HEADER} has no t= timestamp")
    if not candidates:
        raise SignatureInvalid(f"{SIGNATURE_HEADER} has no v1= signature")
    if len(candidates) > _MAX_SIGNATURES:
        raise SignatureInvalid(f"{SIGNATURE_HEADER} has more than {_MAX_SIGNATURES} signatures")
    return timestamp, candidates


def verify(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> None:
    """Accept the request only if some v1 signature matches some secret within the window."""
    if not header:
        raise SignatureInvalid(f"missing {SIGNATURE_HEADER} header")
    timestamp, candidates = parse_header(header)
    if abs(now - timestamp) > tolerance:
        raise SignatureInvalid(
            f"{SIGNATURE_HEADER} timestamp is {int(now - timestamp)} s off"
            f" (more than {tolerance} s): check the sender's clock, or a replay"
        )
    matched = False
    for secret in secrets:
        expected = signature(body, secret, timestamp).encode("ascii")
        for candidate in candidates:
            # Constant time, and no early exit: timing says nothing about which part matched.
            matched |= hmac.compare_digest(expected, candidate.encode("ascii"))
    if not matched:
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body under any secret")

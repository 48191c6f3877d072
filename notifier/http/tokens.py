"""Shared secrets at the HTTP edge: constant-time checks and values derived from a token.

A page that logs in by token (the preview page, the operator console) keeps a cookie whose
value is derived from the token by HMAC, never the token itself: a leaked cookie is not
the token, and rotating the token invalidates every cookie at once.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["bearer", "derive", "same"]


def derive(token: str, purpose: str) -> str:
    """A value only the holder of `token` can compute, one per `purpose` (hex)."""
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def same(given: str | None, expected: str) -> bool:
    """`given` equals `expected`, compared in constant time; None never matches."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def bearer(value: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, or None."""
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None

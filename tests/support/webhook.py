"""Helpers for webhook tests: records to post and signed headers."""

from __future__ import annotations

import json
import time
from typing import Any

from notifier.http.signing import SIGNATURE_HEADER, sign

SECRET = "test-webhook-secret"
TOKEN = "test-postback-token"
UPS = "1Z999AA10123456784"


def shipment(n: int | str, **fields: Any) -> dict[str, Any]:
    """A Pending Shipment with tracking: exactly one Tracking Number Assigned email."""
    record = {
        "order_id": f"O-{n}",
        "fulfillment_id": f"F-{n}",
        "status": "Pending Shipment",
        "tracking_number": UPS,
        "email": f"customer{n}@example.com",
        "first_name": "Jane",
    }
    record.update(fields)
    return record


def body_of(value: Any) -> bytes:
    return json.dumps(value).encode()


def signed(body: bytes, secret: str = SECRET, *, t: int | None = None) -> dict[str, str]:
    """Headers for a signed JSON POST."""
    stamp = int(time.time()) if t is None else t
    return {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret, stamp)}

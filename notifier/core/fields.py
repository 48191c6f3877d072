"""What a record's values may be: the length limits and the address check.

Shared by the two readers of a record: the general parser (notifier.core.records), which
names every problem, and the JSONL fast path (notifier.core.record_lines), which only
accepts; one definition, so they cannot drift apart.
"""

from __future__ import annotations

import re

MAX_FIELD_LENGTH = 255
MAX_EMAIL_LENGTH = 254

# Deliberately simple: one @, no spaces or controls, a dotted domain. Non-ASCII is allowed
# (internationalised addresses); the SMTP transport decides whether the server can take them.
EMAIL_SHAPE = re.compile(
    r"[^\s@\x00-\x1f\x7f\"<>(),;:\\\[\]]{1,64}@[^\s@\x00-\x1f\x7f\"<>(),;:\\\[\]]+\.[^\s@\x00-\x1f\x7f\"<>(),;:\\\[\].]{2,}"
)


def plain_email(address: str) -> bool:
    """Whether an address (already stripped) is one we send to."""
    return len(address) <= MAX_EMAIL_LENGTH and EMAIL_SHAPE.fullmatch(address) is not None

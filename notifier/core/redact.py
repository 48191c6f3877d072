"""Keep customers' addresses out of logs in full."""

from __future__ import annotations


def mask_email(address: str | None) -> str:
    """`jane.doe@example.com` -> `j***@example.com`."""
    if not address:
        return "-"
    local, _, domain = address.rpartition("@")
    if not local:
        return "***"
    return f"{local[0]}***@{domain}"

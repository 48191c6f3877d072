"""Shared fixtures. Each block is self-contained; add new ones below."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.smtp_sink import SmtpSink

# --- SMTP: a real server to send to ------------------------------------------


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A started SMTP sink on 127.0.0.1 and a free port, stopped after the test."""
    with SmtpSink() as sink:
        yield sink

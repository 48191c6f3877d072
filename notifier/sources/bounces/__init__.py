"""Bounce messages (RFC 3464 DSNs, RFC 5965 abuse reports, the non-standard rest) as feedback
events, read from files (`notifier feedback import`) or from a bounce mailbox over IMAP
(the scheduled `mailbox` job)."""

from notifier.sources.bounces.reading import NotUnderstood, read_bounce

__all__ = ["NotUnderstood", "read_bounce"]

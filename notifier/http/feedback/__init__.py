"""Delivery feedback from the mail providers' webhooks (docs/design.md, Provider webhooks):
one module per provider — how it verifies, what its payload says — and the router."""

from notifier.http.feedback.config import FeedbackConfig
from notifier.http.feedback.router import FeedbackAccepted, feedback_router

__all__ = ["FeedbackAccepted", "FeedbackConfig", "feedback_router"]

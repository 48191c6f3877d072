"""The public names of notifier.engine (its modules hold the code)."""

from notifier.engine.config import EngineConfig
from notifier.engine.engine import Engine
from notifier.engine.reports import (
    Clock,
    DeliveryReport,
    IngestReport,
    NullObserver,
    Observer,
    utc_now,
)

__all__ = [
    "Clock",
    "DeliveryReport",
    "Engine",
    "EngineConfig",
    "IngestReport",
    "NullObserver",
    "Observer",
    "utc_now",
]

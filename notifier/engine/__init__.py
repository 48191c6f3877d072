"""The public names of notifier.engine (its modules hold the code)."""

from notifier.engine.engine import (
    Clock,
    DeliveryReport,
    Engine,
    EngineConfig,
    IngestReport,
    Observer,
    utc_now,
)

__all__ = [
    "Clock",
    "DeliveryReport",
    "Engine",
    "EngineConfig",
    "IngestReport",
    "Observer",
    "utc_now",
]

"""The public names of notifier.settings (its modules hold the code)."""

from notifier.settings.environment import (
    Settings,
    load_settings,
)

__all__ = [
    "Settings",
    "load_settings",
]

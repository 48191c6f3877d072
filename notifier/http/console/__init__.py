"""The operator console: server-rendered pages over the ledger (`/console`).

`console_router` is the one entry; `notifier serve` mounts it when NOTIFIER_CONSOLE_TOKEN
is set (`console_from_settings`, from notifier.processes.serve.standard_extras)."""

from notifier.http.console.pages import console_from_settings, console_router

__all__ = ["console_from_settings", "console_router"]

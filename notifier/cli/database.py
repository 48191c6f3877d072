"""`notifier db`: the store's schema."""

from __future__ import annotations

import typer

from notifier.cli.root import app, out, settings

db_app = typer.Typer(no_args_is_help=True, help="The store's schema.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the store's schema to the newest revision."""
    from notifier.store import migrate
    from notifier.store.sql import SqlStore

    config = settings()
    store = SqlStore(config.database_url)
    store.close()
    out.print(f"store {store.safe_url} is at revision {migrate.head_revision()}")

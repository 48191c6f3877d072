"""The `notifier` command: the root app (`root`) and one module per group of commands.

Importing a command module registers its commands on `root.app`; the order of the imports
below is the order `notifier --help` lists them in.
"""

from __future__ import annotations

# isort: off
from notifier.cli import database as _database  # noqa: F401  (first: `db` heads the groups)
from notifier.cli import batch as _batch  # noqa: F401
from notifier.cli import ledger as _ledger  # noqa: F401
from notifier.cli import show as _show  # noqa: F401
from notifier.cli import authoring as _authoring  # noqa: F401
from notifier.cli import rules as _rules  # noqa: F401
from notifier.cli import processes as _processes  # noqa: F401
from notifier.cli import delivery as _delivery  # noqa: F401
from notifier.cli import feedback as _feedback  # noqa: F401

# isort: on
from notifier.cli.root import app

__all__ = ["app", "main"]


def main() -> None:
    app()

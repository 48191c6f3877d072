"""The sqlite3 adapters notifier registers (notifier.store.sqlite) bind exactly what the
driver's default did: None as NULL, a bool as its integer, bytes as a blob."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import notifier.store.sqlite  # noqa: F401  (registers the adapters)


def test_none_bool_and_bytes_bind_as_the_default_did(tmp_path: Path) -> None:
    for kind in (type(None), bool, bytes):
        assert (kind, sqlite3.PrepareProtocol) in sqlite3.adapters, kind
    db = sqlite3.connect(tmp_path / "binding.db")
    try:
        db.execute("CREATE TABLE t (n, flag, body)")
        db.executemany(
            "INSERT INTO t VALUES (?, ?, ?)", [(None, True, b"\x00\xff"), (1, False, b"")]
        )
        rows = db.execute(
            "SELECT n, typeof(n), flag, typeof(flag), body, typeof(body) FROM t ORDER BY rowid"
        ).fetchall()
        nulls = db.execute("SELECT count(*) FROM t WHERE n IS NULL AND flag = 1").fetchone()
    finally:
        db.close()
    assert rows == [
        (None, "null", 1, "integer", b"\x00\xff", "blob"),
        (1, "integer", 0, "integer", b"", "blob"),
    ]
    assert nulls == (1,)

"""Deflate sized to its input (notifier.store.compression): read back by zlib's defaults,
and as small as zlib's full-size state makes it."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest

from notifier.store.compression import deflate

ROOT = Path(__file__).resolve().parents[2]
# Real text of the sizes the ledger compresses: the project's email HTML, and a
# batch-sized run of it.
EMAIL = b"".join(p.read_bytes() for p in sorted((ROOT / "templates").rglob("*.html")))


@pytest.mark.parametrize(
    "data",
    [b"", b"x", EMAIL[:300], EMAIL, EMAIL * 40, os.urandom(70_000)],
    ids=["empty", "one byte", "300 bytes", "an email", "a batch", "random"],
)
def test_it_reads_back_with_zlibs_default_window(data: bytes) -> None:
    assert zlib.decompress(deflate(data)) == data
    assert zlib.decompress(deflate(data, raw=True), -15) == data


@pytest.mark.parametrize("data", [EMAIL[:300], EMAIL, EMAIL * 40], ids=["300", "email", "batch"])
def test_it_is_as_small_as_zlibs_full_size_state_makes_it(data: bytes) -> None:
    assert len(deflate(data)) <= len(zlib.compress(data, 1)) * 1.02 + 8

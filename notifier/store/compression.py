"""Deflate for sent copies and audit batches, by ISA-L (python-isal): zlib's own format.

What is stored is plain deflate, read back by the standard library's zlib, as every copy
and batch already in a ledger was written; only the compressor is Intel's ISA-L instead of
zlib. Measured on this project's data (level 1 of each), ISA-L took a quarter of zlib's
time on an ingest transaction's audit batch (1,000 records, 300 KB: 130 vs 520 µs, a
twentieth of ingesting them) and on an email, for output as small within a tenth (0.99x
zlib's on an email, 1.10x on the benchmark's repetitive batch).

ISA-L's level 1 also needs no large state made afresh per call, which is what zlib's
default did (a 270 KB state mapped per call cost a one-record audit batch ~60 µs, and a
webhook request a quarter of its CPU, before the state was sized to the input).
"""

from __future__ import annotations

from isal import isal_zlib

_LEVEL = 1  # ISA-L's levels are 0-3: 1 compresses as zlib's level 1 does, 4x faster
_WINDOW = 15  # zlib's format: header, deflate, Adler-32
_RAW_WINDOW = -15  # raw deflate: no header or checksum


def deflate(data: bytes, *, raw: bool = False) -> bytes:
    """`data` compressed: zlib's format (header and Adler-32), or raw deflate.
    `zlib.decompress(out)` reads the first, `zlib.decompress(out, -15)` the second."""
    return isal_zlib.compress(data, _LEVEL, _RAW_WINDOW if raw else _WINDOW)

"""Deflate with a state sized to what it compresses: sent copies and audit batches.

zlib's default state is made for large inputs: a 32 KiB window and a 64 Ki-entry hash
table, some 270 KB allocated afresh on every call. An allocation that size is served by a
fresh mmap whose zero-filled pages are faulted in, each time: compressing a one-record
audit batch took ~60 µs that way, ~3 µs with a state sized to it, and a webhook request,
whose group commit writes such a batch, went from 322 to 246 µs of CPU (bench.webhook).
A window just larger than the input finds every match the full one would (there is
nothing further back to refer to), and the hash table shrinks with it as zlib pairs them
(window 15, memory level 8), so the output is as small. Any inflater with the default
window reads it: windows only ever shrink here.
"""

from __future__ import annotations

import zlib

_LEVEL = 1  # most of the saving at a fraction of the time
_SMALLEST_WINDOW, _LARGEST_WINDOW = 9, 15  # zlib's window sizes, in bits


def deflate(data: bytes, *, raw: bool = False) -> bytes:
    """`data` compressed at level 1: zlib's format (header and Adler-32), or raw deflate.
    `zlib.decompress(out)` reads the first, `zlib.decompress(out, -15)` the second."""
    window = min(max(len(data).bit_length(), _SMALLEST_WINDOW), _LARGEST_WINDOW)
    memory = max(window - 7, 1)  # the hash table: 2^(memory + 7) entries
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -window if raw else window, memory)
    return compressor.compress(data) + compressor.flush()

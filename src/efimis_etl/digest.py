"""The order-independent digest of a table's ImportIds, which reconciliation compares as read and as loaded.

It is the sum modulo 2**64 of a 64-bit hash of each ImportId's UTF-8 bytes: PostgreSQL's own
`hashtextextended(text, 0)`, so a PostgreSQL staging store sums it in SQL, and this module computes the
same hash a whole Arrow column at a time with numpy (no Python object per ImportId) for what the reader
read and for stores without that function.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DIGEST_MODULUS = 2**64


def _rotated(x: np.ndarray, k: int) -> np.ndarray:
    return (x << np.uint32(k)) | (x >> np.uint32(32 - k))


def _mix(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    for x, y, z, k in ((0, 2, 1, 4), (1, 0, 2, 6), (2, 1, 0, 8), (0, 2, 1, 16), (1, 0, 2, 19), (2, 1, 0, 4)):
        v = (a, b, c)
        v[x][:] -= v[y]
        v[x][:] ^= _rotated(v[y], k)
        v[y][:] += v[z]


def _final(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    for x, y, k in ((2, 1, 14), (0, 2, 11), (1, 0, 25), (2, 1, 16), (0, 2, 4), (1, 0, 14), (2, 1, 24)):
        v = (a, b, c)
        v[x][:] ^= v[y]
        v[x][:] -= _rotated(v[y], k)


def text_hashes(texts: pa.Array) -> np.ndarray:
    """Each text's 64-bit hash exactly as PostgreSQL's `hashtextextended(text, 0)` computes it (Bob
    Jenkins' lookup3 over the UTF-8 bytes, `hash_bytes_extended` on a little-endian machine), for a whole
    column at once: the staging store can then digest what it holds in SQL, and the reader what it read,
    with the same function. PostgreSQL keeps this function stable (hash partitions are stored by it)."""
    texts = texts.cast(pa.large_string())
    count = len(texts)
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64, count=count + 1, offset=texts.offset * 8)
    data = np.frombuffer(texts.buffers()[2], dtype=np.uint8) if texts.buffers()[2] else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    longest = int(lengths.max(initial=0))
    width = 12 * (longest // 12 + 1)
    padded = np.zeros((count, width), dtype=np.uint8)
    shortest = int(lengths.min(initial=0))
    for position in range(longest):  # a byte position at a time, over every text at once
        if position < shortest:
            padded[:, position] = data[starts + position]
        else:
            longer = np.flatnonzero(lengths > position)
            padded[longer, position] = data[starts[longer] + position]
    words = padded.view("<u4")
    a = (np.uint32(0x9E3779B9 + 3923095) + lengths.astype(np.uint32)).astype(np.uint32)
    b, c = a.copy(), a.copy()
    for block in range(longest // 12):
        if 12 * (block + 1) <= shortest:
            a += words[:, 3 * block]
            b += words[:, 3 * block + 1]
            c += words[:, 3 * block + 2]
            _mix(a, b, c)
            continue
        full = np.flatnonzero(lengths >= 12 * (block + 1))
        wa, wb, wc = a[full], b[full], c[full]
        wa += words[full, 3 * block]
        wb += words[full, 3 * block + 1]
        wc += words[full, 3 * block + 2]
        _mix(wa, wb, wc)
        a[full], b[full], c[full] = wa, wb, wc
    tail = (lengths // 12).astype(np.int64)
    rows = np.arange(count)
    a += words[rows, 3 * tail]
    b += words[rows, 3 * tail + 1]
    c += words[rows, 3 * tail + 2] << np.uint32(8)  # the lowest byte of c is the length's
    _final(a, b, c)
    return (b.astype(np.uint64) << np.uint64(32)) | c.astype(np.uint64)


def import_id_digest(import_ids: pa.Array | pa.ChunkedArray) -> int:
    """The digest of some ImportIds (NULLs ignored): the sum modulo 2**64 of each one's `text_hashes`, the
    same in any order and any split into batches, computed a column at a time (no Python object per
    ImportId)."""
    if isinstance(import_ids, pa.ChunkedArray):
        return sum(import_id_digest(chunk) for chunk in import_ids.chunks) % DIGEST_MODULUS
    present = pc.drop_null(import_ids)
    if len(present) == 0:
        return 0
    return int(text_hashes(present).sum(dtype=np.uint64))

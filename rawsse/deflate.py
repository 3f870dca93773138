"""Sans-IO pieces of a gzip stream assembled from several deflate streams.

A compressed event stream (``--compress``) is one gzip member (RFC 1952) whose deflate
data (RFC 1951) comes from more than one compressor: its group's, shared by every member
that has caught up with it, and, while a stream has not (it joined mid-stream, it is
replaying, it was sent a notice of its own), a small one of its own. Deflate allows it:
after a flush the output ends on a byte boundary with a non-final block, and the blocks
of another compressor may follow as long as none of them refers back to data the
receiver has not seen. What the pieces need beyond :mod:`zlib`:

- the gzip header, written once at the start of a stream;
- the CRC-32 of everything a stream carried, in its trailer, although no one compressor
  saw all of it: the checksum of each piece is combined (:func:`crc32_combine`), and that
  of a piece of the group's stream is taken out of the group's running checksum
  (:func:`crc32_tail`), so that no per-subscriber work is done while events flow;
- a final block that refers to nothing (a stored block): how a stream that shares its
  group's compressor ends, with its own last words (``retry:``).

Nothing here touches a socket or a loop; :mod:`rawsse.hub.compressed` uses it.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

__all__ = [
    "GZIP_HEADER",
    "crc32_combine",
    "crc32_tail",
    "deflater",
    "gzip_trailer",
    "stored_final",
]

#: A gzip member's header: deflate, no flags, no modification time, unknown OS. A
#: stream's first bytes, whichever compressor writes its first block.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

_POLY = 0xEDB88320  # CRC-32's polynomial, reflected


def _mult(a: int, b: int) -> int:
    """``a * b`` modulo CRC-32's polynomial, both reflected (zlib's ``multmodp``)."""
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if (a & (m - 1)) == 0:
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


#: x^(2^k) modulo the polynomial for k = 0..31, for :func:`_x8n`.
_X2N = [1 << 30]
for _ in range(31):
    _X2N.append(_mult(_X2N[-1], _X2N[-1]))


def _x8n(length: int) -> int:
    """x^(8 * length) modulo the polynomial: what shifting a CRC past ``length`` bytes
    multiplies it by (zlib's ``x2nmodp(length, 3)``)."""
    p = 1 << 31  # x^0
    k = 3
    while length:
        if length & 1:
            p = _mult(_X2N[k & 31], p)
        length >>= 1
        k += 1
    return p


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of ``A + B`` from that of ``A``, that of ``B`` and ``B``'s length."""
    return _mult(_x8n(length2), crc1) ^ crc2


def crc32_tail(crc_whole: int, crc_head: int, length_tail: int) -> int:
    """The CRC-32 of ``B`` from that of ``A + B``, that of ``A`` and ``B``'s length:
    the checksum of the part of a group's stream one subscriber received, from the
    group's running checksum then and when it began to receive it."""
    return crc_whole ^ _mult(_x8n(length_tail), crc_head)


def gzip_trailer(crc: int, size: int) -> bytes:
    """A gzip member's trailer: the CRC-32 and the length (modulo 2^32) of the data."""
    return struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)


#: A stored block holds at most this many bytes.
_STORED_MAX = 0xFFFF


def stored_final(data: bytes) -> bytes:
    """``data`` as stored (uncompressed) deflate blocks, the last of them final. They
    refer to nothing before them, so they may follow any flushed deflate data."""
    blocks = []
    for start in range(0, max(len(data), 1), _STORED_MAX):
        piece = data[start : start + _STORED_MAX]
        final = start + _STORED_MAX >= len(data)
        blocks.append(struct.pack("<BHH", final, len(piece), len(piece) ^ 0xFFFF) + piece)
    return b"".join(blocks)


def deflater(level: int, window_bits: int, mem_level: int) -> Any:
    """A raw deflate compressor (no header: :data:`GZIP_HEADER` is written apart). A
    window smaller than 32 KiB costs less memory and any decoder reads its output."""
    return zlib.compressobj(level, zlib.DEFLATED, -window_bits, mem_level)

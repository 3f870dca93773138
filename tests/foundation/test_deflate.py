"""The gzip pieces a compressed stream is assembled from: checksums combined and taken
apart as zlib computes them whole, and a stream of several compressors' blocks with a
stored final block that zlib inflates and checks."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawsse.deflate import (
    GZIP_HEADER,
    crc32_combine,
    crc32_tail,
    deflater,
    gzip_trailer,
    stored_final,
)


@given(st.binary(max_size=3000), st.binary(max_size=3000))
def test_checksums_combine_and_come_apart_as_zlib_computes_them(a: bytes, b: bytes) -> None:
    whole = zlib.crc32(a + b)
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == whole
    assert crc32_tail(whole, zlib.crc32(a), len(b)) == zlib.crc32(b)


@given(st.lists(st.binary(max_size=2000), min_size=1, max_size=6), st.binary(max_size=70_000))
def test_a_stream_of_several_compressors_and_a_stored_end_inflates(
    pieces: list[bytes], last: bytes
) -> None:
    """Each piece from a fresh compressor, sync-flushed, as a stream that leaves one
    compressor for another does; then a stored final block (over 64 KiB: two blocks)."""
    body = GZIP_HEADER
    crc = size = 0
    for piece in pieces:
        packer = deflater(6, 10, 3)
        body += packer.compress(piece) + packer.flush(zlib.Z_SYNC_FLUSH)
        crc, size = crc32_combine(crc, zlib.crc32(piece), len(piece)), size + len(piece)
    body += stored_final(last)
    crc, size = crc32_combine(crc, zlib.crc32(last), len(last)), size + len(last)
    inflater = zlib.decompressobj(31)
    assert inflater.decompress(body + gzip_trailer(crc, size)) == b"".join(pieces) + last
    assert inflater.eof and not inflater.unused_data


def test_a_wrong_checksum_is_refused_by_zlib() -> None:
    """What the tests of streams rely on: zlib checks the trailer it is given."""
    body = GZIP_HEADER + stored_final(b"data: x\n\n")
    inflater = zlib.decompressobj(31)
    with pytest.raises(zlib.error, match="incorrect data check"):
        inflater.decompress(body + gzip_trailer(zlib.crc32(b"data: y\n\n"), 9))

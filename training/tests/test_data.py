"""Image files the toolkit refuses before decoding, with the daemon's limits (capture.go)."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest

from adtr.data import MAX_PIXELS, DataError, load_image


def png_header(w: int, h: int) -> bytes:
    """A PNG that declares w x h pixels and holds none: a decompression bomb's header."""
    def chunk(typ: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + typ + data + struct.pack(">I", zlib.crc32(typ + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("make, problem", [
    (lambda d: (d / "bomb.png").write_bytes(png_header(30000, 30000)) and d / "bomb.png",
     "over the 48 M limit"),  # 3.6 GB if decoded; Pillow's own check may say it first
    (lambda d: (d / "wide.png").write_bytes(png_header(1 << 20, 64)) and d / "wide.png", "declares 1048576x64"),  # too many in all
    (lambda d: (os.mkfifo(d / "fifo.png"), d / "fifo.png")[1], "not a regular file"),  # a read that would block
    (lambda d: ((d / "dir.png").mkdir(), d / "dir.png")[1], "not a regular file"),  # a directory named like an image
], ids=["bomb", "wide", "fifo", "directory"])
def test_refused_before_decoding(tmp_path: Path, make, problem: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(DataError) as e:
        load_image(path, 32)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and problem in msg and "\n" not in msg, msg


def test_limit_matches_the_daemon() -> None:
    go = (Path(__file__).resolve().parents[2] / "capture" / "capture.go").read_text()
    assert "MaxPixels    = 48 << 20" in go and MAX_PIXELS == 48 << 20

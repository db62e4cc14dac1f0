"""The preprocessing contract (adtr/preprocess.py): the shared corpus in
capture/testdata/preprocess, which the daemon's `go test ./capture` reads too, gives
these exact bytes here; the toolkit can also read images through the daemon's own
decoding (`--adtrd`), which is how JPEG thresholds match the daemon exactly.

Regressions of issue 12's field cases 07 (alpha premultiplied in the daemon) and 08
(16-bit grey saturated to white in the toolkit) are rows of the corpus and the two
tests at the end.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adtr import data, preprocess
from adtr.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "capture" / "testdata" / "preprocess"
ADTRD = ROOT / "build" / "adtrd"


def cases() -> list[dict]:  # type: ignore[type-arg]
    return json.loads((CORPUS / "corpus.json").read_text())["cases"]


def test_corpus_covers_every_png_colour_type_and_jpeg_kind() -> None:
    files = {c["file"].rsplit("-", 1)[0] for c in cases()}
    for kind in ("grey1", "grey2", "grey4", "grey16", "grey16-trns", "rgb16", "rgb8-trns", "greyalpha16", "rgba8", "rgba16",
                 "palette1", "palette8-trns", "jpeg420", "jpeg444", "jpeg-grey", "jpeg-cmyk", "jpeg-exif6"):
        assert kind in files, kind


@pytest.mark.parametrize("case", cases(), ids=lambda c: f"{c['file']}-{c['fit']}")
def test_toolkit_gives_the_corpus_bytes(case: dict) -> None:  # type: ignore[type-arg]
    path = CORPUS / case["file"]
    if case.get("refused"):
        with pytest.raises(data.DataError, match=case["file"]):
            data.load_image(path, case["size"])
        return
    if "error" in case:
        with pytest.raises(data.DataError, match=case["error"].replace("(", r"\(").replace(")", r"\)")):
            data.load_image(path, case["size"], fit=case["fit"])
        return
    got = data.load_image(path, case["size"], fit=case["fit"])
    want = np.frombuffer((CORPUS / case["want"]).read_bytes(), np.uint8).reshape(got.shape)
    np.testing.assert_array_equal(got, want)


def daemon() -> preprocess.DaemonDecoder:
    if not ADTRD.is_file():
        pytest.fail(f"{ADTRD}: missing; `make build` builds it")
    return preprocess.DaemonDecoder(ADTRD)


def test_daemon_decoding_equals_the_toolkits_on_lossless_files_and_is_bounded_on_jpeg() -> None:
    dec, worst, lossy = daemon(), 0, 0
    for c in cases():
        if c.get("refused"):
            with pytest.raises(preprocess.PreprocessError):
                dec(CORPUS / c["file"], c["size"], c["fit"])
            continue
        if "error" in c:
            with pytest.raises(preprocess.PreprocessError, match="smaller than the model's"):
                dec(CORPUS / c["file"], c["size"], c["fit"])
            continue
        got = dec(CORPUS / c["file"], c["size"], c["fit"])
        want = np.frombuffer((CORPUS / c["want"]).read_bytes(), np.uint8).reshape(got.shape)
        d = int(np.abs(got.astype(int) - want).max())
        if c["lossy"]:
            worst, lossy = max(worst, d), lossy + 1
        else:
            assert d == 0, c
    print(f"JPEG: daemon vs Pillow at most {worst} levels over {lossy} corpus cases")
    assert worst > 0  # the two JPEG decoders differ; that is why --adtrd exists


def test_dataset_reads_through_the_daemon(tmp_path: Path) -> None:
    """A JPEG category read with --adtrd gets the daemon's bytes, the same ones
    `adtrd preprocess` writes, and not Pillow's."""
    good = tmp_path / "cat" / "train" / "good"
    good.mkdir(parents=True)
    for i in range(2):
        src = np.asarray(Image.open(CORPUS / "jpeg420-120x90.jpg"))
        Image.fromarray(np.roll(src, i * 7, axis=1)).save(good / f"{i}.jpg", quality=85)
    via = data.Dataset(tmp_path / "cat", daemon()).train(32)
    pil = data.Dataset(tmp_path / "cat").train(32)
    raw = subprocess.run([str(ADTRD), "preprocess", "--size", "32", str(good / "0.jpg"), str(good / "1.jpg")],
                         capture_output=True, check=True).stdout
    np.testing.assert_array_equal(via, np.frombuffer(raw, np.uint8).reshape(2, 32, 32, 3))
    assert not np.array_equal(via, pil)


def test_daemon_decoder_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d" / "train" / "good").mkdir(parents=True)
    # a missing binary, then a file the daemon cannot read
    assert cli_main(["eval", "--data", str(tmp_path / "d"), "--graph", "x.tflite", "--adtrd", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not an executable adtrd" in err, err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(data.DataError, match="bad.png"):
        data.load_image(bad, 16, decoder=daemon())


def test_alpha_is_dropped_not_premultiplied() -> None:
    """Field case 07: an RGBA frame reads as its RGB, on both sides."""
    rgb = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.dstack([rgb, np.full((20, 20), 128, np.uint8)]), "RGBA").save(buf, "PNG")
    im = Image.open(io.BytesIO(buf.getvalue()))
    np.testing.assert_array_equal(preprocess.to_rgb8(im), rgb)


def test_sixteen_bit_grey_is_scaled_not_saturated(tmp_path: Path) -> None:
    """Field case 08: 16-bit grey becomes v >> 8 (the daemon's reading), not white."""
    v = (np.arange(256, dtype=np.uint32) * 257).astype(np.uint16).reshape(16, 16)
    p = tmp_path / "g16.png"
    Image.fromarray(v).save(p)  # Pillow writes a 16-bit grey PNG from uint16
    assert Image.open(p).mode.startswith("I")
    got = data.load_image(p, 16)
    np.testing.assert_array_equal(got[:, :, 0], (v >> 8).astype(np.uint8))
    out = subprocess.run([str(daemon().binary), "preprocess", "--size", "16", str(p)], capture_output=True, check=True).stdout
    np.testing.assert_array_equal(got, np.frombuffer(out, np.uint8).reshape(16, 16, 3))


def test_daemon_decoder_refuses_binaries_that_are_not_adtrd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--adtrd with the wrong binary: one line naming it, never a flood read into memory
    or a child left running."""
    flood = tmp_path / "flood"
    flood.write_text('#!/bin/sh\necho "adtrd fake"\n[ "$1" = version ] && exit 0\nexec yes\n')
    hang = tmp_path / "hang"
    hang.write_text('#!/bin/sh\necho "adtrd fake"\n[ "$1" = version ] && exit 0\nexec sleep 4321\n')
    for f in (flood, hang):
        f.chmod(0o755)
    monkeypatch.setattr(preprocess.DaemonDecoder, "TIMEOUT_S", 1.0)
    img = CORPUS / "rgb8-40x30.png"
    for binary, want in (("/bin/false", "not an adtrd binary"), ("/bin/true", "not an adtrd binary"), ("", "empty path"),
                         (str(flood), "wrote more than the 768 bytes"), (str(hang), "no answer within 1 s")):
        with pytest.raises(preprocess.PreprocessError, match=want) as e:
            preprocess.DaemonDecoder(binary)(img, 16)
        assert "\n" not in str(e.value)
    left = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and b"sleep\x004321" in (d / "cmdline").read_bytes():
                left.append(d.name)
        except OSError:
            pass
    assert not left, f"the hung child is still running: pid {left}"
    # a relative path is this directory's file, never one found on PATH
    with pytest.raises(preprocess.PreprocessError, match="not an executable adtrd"):
        preprocess.DaemonDecoder("adtrd")


def test_toolkit_messages_name_the_file_for_every_malformed_png(tmp_path: Path) -> None:
    """Pillow raises struct.error or ValueError on some malformed chunks; the toolkit
    still gives one line naming the file. (Go's decoder skips a short gAMA or pHYs, so
    here the toolkit is the stricter side; the corpus's "refused" cases are the ones
    both refuse.)"""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\0" + bytes(12) for _ in range(4)))
    for name, body in (
        ("gama-after-idat", [(b"IHDR", ihdr), (b"IDAT", idat), (b"gAMA", b"\0\1"), (b"IEND", b"")]),
        ("short-ihdr", [(b"IHDR", ihdr[:12]), (b"IDAT", idat), (b"IEND", b"")]),
        ("short-phys", [(b"IHDR", ihdr), (b"pHYs", b"\1"), (b"IDAT", idat), (b"IEND", b"")]),
    ):
        p = tmp_path / f"{name}.png"
        p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"".join(chunk(k, v) for k, v in body))
        with pytest.raises(data.DataError, match=f"{name}.png: ") as e:
            data.load_image(p, 16)
        assert "\n" not in str(e.value)

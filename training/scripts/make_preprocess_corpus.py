"""Writes capture/testdata/preprocess: small images in every PNG colour type and bit
depth and a few JPEG kinds, and the model input bytes the toolkit's preprocessing
(adtr/preprocess.py) makes of each, which the daemon's (capture/preprocess.go) must
equal (`go test ./capture`, `pytest tests/test_preprocess.py`).

PNGs are written by hand (zlib + chunks) so that every colour type, bit depth and
transparency form exists, whatever Pillow can write. Run from training/:
    .venv/bin/python scripts/make_preprocess_corpus.py
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from adtr import data, preprocess  # noqa: E402

OUT = HERE.parent.parent / "capture" / "testdata" / "preprocess"
SIZE = 16  # the corpus's model input


def scene(w: int, h: int, seed: int) -> np.ndarray:
    """(h, w, 3) float in [0, 1): gradients, a disc and noise, so resizes and channel
    mix-ups show."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = x / max(w - 1, 1)
    g = y / max(h - 1, 1)
    b = ((x - w / 2) ** 2 + (y - h / 2) ** 2 < (min(w, h) / 3) ** 2).astype(np.float64) * 0.8
    img = np.stack([r, g, b], axis=2) * 0.85 + rng.random((h, w, 3)) * 0.15
    return np.clip(img, 0, 0.9999)


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png(samples: np.ndarray, colour_type: int, depth: int, extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """samples: (h, w, c) integers < 2**depth; rows packed MSB first, filter 0."""
    h, w, c = samples.shape
    rows = []
    for row in samples:
        flat = row.reshape(-1).astype(np.uint32)
        if depth == 16:
            raw = flat.astype(">u2").tobytes()
        elif depth == 8:
            raw = flat.astype(np.uint8).tobytes()
        else:
            per = 8 // depth
            pad = (-len(flat)) % per
            f = np.concatenate([flat, np.zeros(pad, np.uint32)]).reshape(-1, per)
            shifts = np.array([8 - depth * (i + 1) for i in range(per)], np.uint32)
            raw = (f << shifts).sum(axis=1).astype(np.uint8).tobytes()
        rows.append(b"\x00" + raw)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)
    body = chunk(b"IHDR", ihdr)
    for kind, b in extra or []:
        body += chunk(kind, b)
    body += chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def q(img: np.ndarray, depth: int) -> np.ndarray:
    return np.floor(img * (1 << depth)).astype(np.uint32)


def grey(img: np.ndarray) -> np.ndarray:
    return (img[:, :, :1] * 0.5 + img[:, :, 1:2] * 0.3 + img[:, :, 2:3] * 0.2)


def alpha(img: np.ndarray) -> np.ndarray:
    """An alpha ramp from 0 (transparent) to opaque: premultiplying would show."""
    h, w = img.shape[:2]
    return np.tile(np.linspace(0, 0.9999, w)[None, :, None], (h, 1, 1))


def pngs(w: int, h: int, seed: int) -> dict[str, bytes]:
    img = scene(w, h, seed)
    g, a = grey(img), alpha(img)
    out: dict[str, bytes] = {}
    for d in (1, 2, 4, 8, 16):
        out[f"grey{d}"] = png(q(g, d), 0, d)
    out["grey8-trns"] = png(q(g, 8), 0, 8, [(b"tRNS", struct.pack(">H", int(q(g, 8)[0, 0, 0])))])
    out["grey16-trns"] = png(q(g, 16), 0, 16, [(b"tRNS", struct.pack(">H", int(q(g, 16)[0, 0, 0])))])
    out["rgb8"] = png(q(img, 8), 2, 8)
    out["rgb16"] = png(q(img, 16), 2, 16)
    px = q(img, 8)[0, 0]
    out["rgb8-trns"] = png(q(img, 8), 2, 8, [(b"tRNS", struct.pack(">HHH", *map(int, px)))])
    out["greyalpha8"] = png(np.concatenate([q(g, 8), q(a, 8)], 2), 4, 8)
    out["greyalpha16"] = png(np.concatenate([q(g, 16), q(a, 16)], 2), 4, 16)
    out["rgba8"] = png(np.concatenate([q(img, 8), q(a, 8)], 2), 6, 8)
    out["rgba16"] = png(np.concatenate([q(img, 16), q(a, 16)], 2), 6, 16)
    for d in (1, 2, 4, 8):
        n = 1 << d
        rng = np.random.default_rng(seed + d)
        pal = rng.integers(0, 256, (n, 3), dtype=np.uint8)
        idx = np.clip(q(g, d), 0, n - 1)
        out[f"palette{d}"] = png(idx, 3, d, [(b"PLTE", pal.tobytes())])
        trns = rng.integers(0, 256, n, dtype=np.uint8)
        out[f"palette{d}-trns"] = png(idx, 3, d, [(b"PLTE", pal.tobytes()), (b"tRNS", trns.tobytes())])
    return out


def jpegs(w: int, h: int, seed: int) -> dict[str, bytes]:
    img = (scene(w, h, seed) * 256).astype(np.uint8)
    out: dict[str, bytes] = {}
    for name, kw in (("jpeg420", {"subsampling": 2}), ("jpeg444", {"subsampling": 0})):
        b = io.BytesIO()
        Image.fromarray(img, "RGB").save(b, "JPEG", quality=90, **kw)
        out[name] = b.getvalue()
    b = io.BytesIO()
    Image.fromarray(img[:, :, 0], "L").save(b, "JPEG", quality=90)
    out["jpeg-grey"] = b.getvalue()
    b = io.BytesIO()
    Image.fromarray(img, "RGB").convert("CMYK").save(b, "JPEG", quality=90)
    out["jpeg-cmyk"] = b.getvalue()
    b = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90; the contract ignores it
    Image.fromarray(img, "RGB").save(b, "JPEG", quality=90, exif=exif.tobytes())
    out["jpeg-exif6"] = b.getvalue()
    return out


def malformed(w: int, h: int, seed: int) -> dict[str, bytes]:
    """PNGs Go's decoder refuses and Pillow reads anyway (missing rows as zeros, a bad
    CRC, no IEND...): both sides must refuse each as a bad frame."""
    img = q(scene(w, h, seed), 8)
    rows = b"".join(b"\x00" + r.astype(np.uint8).tobytes() for r in img.reshape(h, w * 3))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)

    def build(chunks: list[tuple[bytes, bytes]]) -> bytes:
        return b"\x89PNG\r\n\x1a\n" + b"".join(chunk(k, v) for k, v in chunks)

    good_idat = zlib.compress(rows, 9)
    bad_crc = bytearray(build([(b"IHDR", ihdr), (b"IDAT", good_idat), (b"IEND", b"")]))
    bad_crc[8 + 25 + 10] ^= 0xFF  # a byte inside IDAT's data: its CRC no longer matches
    pal = np.random.default_rng(seed).integers(0, 256, (16, 3), dtype=np.uint8).tobytes()
    p_ihdr = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)
    p_rows = b"".join(b"\x00" + bytes([i % 16] * w) for i in range(h))
    return {
        "bad-missing-rows": build([(b"IHDR", ihdr), (b"IDAT", zlib.compress(rows[: (h // 2) * (1 + 3 * w)])), (b"IEND", b"")]),
        "bad-extra-rows": build([(b"IHDR", ihdr), (b"IDAT", zlib.compress(rows + rows[: 1 + 3 * w])), (b"IEND", b"")]),
        "bad-no-iend": build([(b"IHDR", ihdr), (b"IDAT", good_idat)]),
        "bad-idat-crc": bytes(bad_crc),
        "bad-filter-type": build([(b"IHDR", ihdr), (b"IDAT", zlib.compress(b"\x07" + rows[1:])), (b"IEND", b"")]),
        "bad-palette-missing": build([(b"IHDR", p_ihdr), (b"IDAT", zlib.compress(p_rows)), (b"IEND", b"")]),
        "bad-plte-after-idat": build([(b"IHDR", p_ihdr), (b"IDAT", zlib.compress(p_rows)), (b"PLTE", pal), (b"IEND", b"")]),
        "bad-trns-in-rgba": build([(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)), (b"tRNS", b"\0\0"),
                                   (b"IDAT", zlib.compress(b"".join(b"\x00" + bytes(4 * w) for _ in range(h)))), (b"IEND", b"")]),
        "bad-plte-too-long": build([(b"IHDR", ihdr), (b"PLTE", bytes(257 * 3)), (b"IDAT", good_idat), (b"IEND", b"")]),
        "bad-ihdr-compression": build([(b"IHDR", ihdr[:10] + b"\x01" + ihdr[11:]), (b"IDAT", good_idat), (b"IEND", b"")]),
    }


# (suffix, width, height, seed, fits): at the model's size, shrinking by 2.5 and by 7.5,
# enlarging, and a wide strip.
SHAPES = (
    ("16x16", 16, 16, 1, ("resize",)),
    ("40x30", 40, 30, 2, ("resize", "crop")),
    ("120x90", 120, 90, 3, ("resize",)),
    ("10x7", 10, 7, 4, ("resize", "crop")),
    ("64x9", 64, 9, 5, ("resize",)),
)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    cases = []
    for suffix, w, h, seed, fits in SHAPES:
        files = {**pngs(w, h, seed), **({f: b for f, b in jpegs(w, h, seed).items()} if suffix in ("16x16", "40x30", "120x90") else {})}
        for name, b in files.items():
            ext = ".jpg" if name.startswith("jpeg") else ".png"
            fname = f"{name}-{suffix}{ext}"
            (OUT / fname).write_bytes(b)
            for how in fits:
                case = {"file": fname, "size": SIZE, "fit": how, "lossy": ext == ".jpg"}
                try:
                    px = data.load_image(OUT / fname, SIZE, fit=how)
                except data.DataError as e:
                    case["error"] = str(e).split(": ", 1)[1]
                else:
                    case["want"] = f"{fname}.{how}.rgb"
                    (OUT / case["want"]).write_bytes(np.ascontiguousarray(px).tobytes())
                cases.append(case)
    for name, b in malformed(40, 30, 9).items():
        fname = f"{name}-40x30.png"
        (OUT / fname).write_bytes(b)
        case = {"file": fname, "size": SIZE, "fit": "resize", "lossy": False, "refused": True}
        try:
            data.load_image(OUT / fname, SIZE)
        except data.DataError as e:
            case["toolkit_error"] = str(e).split(": ", 1)[1]
        else:
            raise SystemExit(f"{fname}: the toolkit reads it; it must refuse it as the daemon does")
        cases.append(case)
    # A progressive JPEG whose last scan repeats: 10 scans pass, 40 are refused (a
    # decoding time bomb at full size; tiny here).
    buf = io.BytesIO()
    Image.fromarray((scene(40, 30, 11) * 256).astype(np.uint8), "RGB").save(buf, "JPEG", quality=90, progressive=True)
    prog = buf.getvalue()
    last = prog.rfind(b"\xff\xda")
    for name, reps in (("jpeg-progressive", 0), ("bad-jpeg-40-scans", 40 - prog.count(b"\xff\xda"))):
        b = prog[:-2] + prog[last:-2] * reps + b"\xff\xd9"
        fname = f"{name}-40x30.jpg"
        (OUT / fname).write_bytes(b)
        case = {"file": fname, "size": SIZE, "fit": "resize", "lossy": True}
        try:
            px = data.load_image(OUT / fname, SIZE)
        except data.DataError as e:
            case.update(refused=True, toolkit_error=str(e).split(": ", 1)[1])
        else:
            case["want"] = f"{fname}.resize.rgb"
            (OUT / case["want"]).write_bytes(np.ascontiguousarray(px).tobytes())
        cases.append(case)
    (OUT / "corpus.json").write_text(json.dumps({"size": SIZE, "cases": cases}, indent=1) + "\n")
    print(f"{OUT}: {len(cases)} cases")


if __name__ == "__main__":
    main()

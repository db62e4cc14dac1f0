"""The preprocessing contract: a decoded file becomes the model's uint8 RGB input.

The daemon implements the same rules (capture/preprocess.go, capture/resample.go) and
the corpus in testdata/preprocess holds both to identical bytes, so that a threshold
the toolkit computes describes what the daemon scores:

- grey (1, 2, 4, 8 bit): the value on all three channels;
- 16-bit samples (grey, RGB, with or without alpha): the high byte (v >> 8), which is
  what Pillow's PNG reader already does for 16-bit RGB ("I;16" grey is done here:
  convert("RGB") would saturate it to white);
- alpha (RGBA, LA, PA, tRNS): dropped; the colour is taken as stored, never
  premultiplied;
- palette: the palette's RGB;
- CMYK: Pillow's cmyk2rgb;
- EXIF orientation, gamma and ICC profiles: ignored;
- fit "resize": Pillow's Image.resize(BILINEAR) (antialiased when shrinking); fit
  "crop": the centre window at ((w - S) // 2, (h - S) // 2).

Lossless files (PNG) give identical bytes on both sides; JPEG decodes differently in
libjpeg-turbo (Pillow) and Go's image/jpeg: see README "One preprocessing".
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

FITS = ("resize", "crop")
# Pillow modes a PNG or JPEG opens as, and how each becomes RGB.
_AS_RGB = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"}
_SIXTEEN = {"I;16", "I;16B", "I;16L", "I"}


class PreprocessError(ValueError):
    """An image the contract does not define (the message names the mode or size)."""


def to_rgb8(im: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a loaded image, by the contract."""
    mode = im.mode
    if mode in _SIXTEEN:
        v = np.asarray(im).astype(np.int64)
        if v.min() < 0 or v.max() > 0xFFFF:
            raise PreprocessError(f"colour mode {mode} with values outside 0..65535")
        g = (v >> 8).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode == "LA":
        im = im.getchannel("L")
    elif mode in ("RGBA", "RGBX"):
        im = im.convert("RGB")  # drops A; Pillow's RGBA holds unpremultiplied colour
    elif mode in ("P", "PA"):
        return _palette_rgb(im)
    if mode not in _AS_RGB:
        raise PreprocessError(f"colour mode {mode} is not supported (PNG or JPEG in grey, RGB, palette or CMYK)")
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _palette_rgb(im: Image.Image) -> np.ndarray:
    """Each index's palette RGB, alpha and tRNS ignored (convert("RGB") warns about
    tRNS and its handling of RGBA palettes has changed between Pillow versions); an
    index past the palette is black."""
    idx = np.asarray(im.getchannel(0) if im.mode == "PA" else im, dtype=np.uint8)
    raw = im.palette.tobytes() if im.palette is not None else b""
    ch = len(im.palette.mode) if im.palette is not None else 3
    pal = np.zeros((256, 3), np.uint8)
    entries = np.frombuffer(raw, np.uint8)[: 256 * ch].reshape(-1, ch)[:, :3]
    pal[: len(entries)] = entries
    return pal[idx]


def fit(rgb: np.ndarray, size: int, how: str = "resize") -> np.ndarray:
    """(size, size, 3) uint8 from (H, W, 3) uint8, by resize or centre crop."""
    if how not in FITS:
        raise PreprocessError(f"fit {how!r}: want one of {', '.join(FITS)}")
    h, w = rgb.shape[:2]
    if (w, h) == (size, size):
        return rgb
    if how == "crop":
        if w < size or h < size:
            raise PreprocessError(f"{w}x{h} is smaller than the model's {size}x{size} (use fit: resize)")
        x0, y0 = (w - size) // 2, (h - size) // 2
        return np.ascontiguousarray(rgb[y0 : y0 + size, x0 : x0 + size])
    return np.asarray(Image.fromarray(rgb, "RGB").resize((size, size), Image.BILINEAR))


class DaemonDecoder:
    """Decodes through an adtrd binary (`adtrd preprocess`), so that scores and
    thresholds are computed on exactly the daemon's input bytes, JPEG included.

    The binary is resolved to an absolute path and must answer `version` as adtrd
    does; each call reads at most the expected bytes from it and kills its process
    group if it runs past TIMEOUT_S.
    """

    TIMEOUT_S = 60.0

    def __init__(self, binary: str | Path) -> None:
        if not str(binary):
            raise PreprocessError("--adtrd: empty path (give the adtrd binary, e.g. build/adtrd)")
        self.binary = Path(binary).resolve()
        if not self.binary.is_file() or not os.access(self.binary, os.X_OK):
            raise PreprocessError(f"{self.binary}: not an executable adtrd (build it with `make build`)")
        try:
            out = self._run(["version"], 256, 10.0)
        except PreprocessError as e:
            raise PreprocessError(f"{self.binary}: not an adtrd binary (`version`: {e})") from None
        if not out.startswith(b"adtrd "):
            raise PreprocessError(f"{self.binary}: not an adtrd binary (`version` printed {out[:40]!r})")

    def __call__(self, path: Path, size: int, how: str = "resize") -> np.ndarray:
        if how not in FITS:
            raise PreprocessError(f"fit {how!r}: want one of {', '.join(FITS)}")
        want = size * size * 3
        out = self._run(["preprocess", "--size", str(size), "--fit", how, "--", str(Path(path).resolve())], want, self.TIMEOUT_S)
        if len(out) != want:
            raise PreprocessError(f"{self.binary} preprocess wrote {len(out)} bytes, want {want}")
        return np.frombuffer(out, np.uint8).reshape(size, size, 3).copy()

    def _run(self, args: list[str], limit: int, timeout: float) -> bytes:
        """stdout of binary args (at most limit bytes; more is an error), or the last
        line of its stderr as the error."""
        import selectors
        import signal
        import time

        try:
            proc = subprocess.Popen([str(self.binary), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            raise PreprocessError(f"{self.binary}: {e.strerror or e}") from None
        assert proc.stdout is not None and proc.stderr is not None
        out, err = bytearray(), bytearray()
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline, problem = time.monotonic() + timeout, ""
        try:
            while sel.get_map() and not problem:
                left = deadline - time.monotonic()
                if left <= 0:
                    problem = f"{self.binary}: no answer within {timeout:g} s"
                    break
                for key, _ in sel.select(left):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        continue
                    buf = out if key.fileobj is proc.stdout else err
                    buf += chunk
                    if len(out) > limit or len(err) > 65536:
                        problem = f"{self.binary} {args[0]}: wrote more than the {limit} bytes expected"
            if not problem:
                try:  # both pipes are closed: the child is exiting
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    problem = f"{self.binary}: did not exit within {timeout:g} s"
        finally:
            sel.close()
            if problem or proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the child and anything it started
                except ProcessLookupError:
                    pass
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        if problem:
            raise PreprocessError(problem)
        if proc.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            msg = lines[-1] if lines else f"exited {proc.returncode}"
            raise PreprocessError(msg.removeprefix("adtrd preprocess: ").removeprefix("capture: frame: "))
        return bytes(out)


# PNG structure as Go's image/png checks it (the daemon's decoder). Pillow is more
# lenient: it fills missing rows with zeros, ignores bad CRCs and a missing IEND, and
# decodes palette images without a palette as black, so a file the daemon refuses as a
# bad frame could otherwise train or calibrate the model. png_problem refuses what Go
# refuses; the corpus (capture/testdata/preprocess, "refused" cases) holds both sides.
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7 passes: (x0, y0, dx, dy)
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def png_problem(b: bytes) -> str | None:
    """What Go's PNG decoder would refuse in b, or None."""
    import struct
    import zlib

    if not b.startswith(_PNG_SIG):
        return "not a PNG (bad signature)"
    pos, stage, ihdr, palette = 8, "start", None, 0
    idat = bytearray()
    while True:
        if pos + 8 > len(b):
            return "truncated: no IEND chunk"
        length, kind = struct.unpack(">I4s", b[pos : pos + 8])
        if length > 0x7FFFFFFF or pos + 12 + length > len(b):
            return f"truncated {kind.decode('latin-1')!r} chunk"
        body = b[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", b[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            return f"{kind.decode('latin-1')!r} chunk: invalid checksum"
        pos += 12 + length
        if stage == "start" and kind != b"IHDR":
            return "chunk out of order (IHDR must come first)"
        if kind == b"IHDR":
            if stage != "start" or length != 13:
                return "bad IHDR"
            w, h, depth, ct, comp, filt, inter = struct.unpack(">IIBBBBB", body)
            if w == 0 or h == 0 or w > 0x7FFFFFFF or h > 0x7FFFFFFF:
                return f"IHDR: {w}x{h} pixels"
            if ct not in _DEPTHS or depth not in _DEPTHS[ct]:
                return f"IHDR: bit depth {depth} with colour type {ct}"
            if comp != 0 or filt != 0 or inter > 1:
                return "IHDR: unknown compression, filter or interlace method"
            ihdr, stage = (w, h, depth, ct, inter), "ihdr"
        elif kind == b"PLTE":
            assert ihdr is not None
            if stage != "ihdr":
                return "chunk out of order (PLTE)"
            n = length // 3
            if ihdr[3] in (0, 4):
                return "PLTE, colour type mismatch"
            if length % 3 or n == 0 or n > 256 or n > 1 << ihdr[2]:
                return "bad PLTE length"
            palette = n
            stage = "plte"
        elif kind == b"tRNS":
            assert ihdr is not None
            ct = ihdr[3]
            if ct == 3 and stage != "plte" or ct in (2, 6) and stage not in ("ihdr", "plte") or ct in (0, 4) and stage != "ihdr":
                return "chunk out of order (tRNS)"
            if ct in (4, 6):
                return "tRNS, colour type mismatch"
            if ct == 0 and length != 2 or ct == 2 and length != 6 or ct == 3 and length > palette:
                return "bad tRNS length"
        elif kind == b"IDAT":
            assert ihdr is not None
            if stage == "idat-done":
                continue  # Go ignores IDAT chunks after the image data
            if stage == "start" or (ihdr[3] == 3 and stage != "plte" and stage != "idat"):
                return "chunk out of order (IDAT)"
            idat += body
            stage = "idat"
            continue
        elif kind == b"IEND":
            break
        if stage == "idat":
            stage = "idat-done"
    if ihdr is None or stage not in ("idat", "idat-done"):
        return "no image data (IDAT)"
    w, h, depth, ct, inter = ihdr
    try:
        d = zlib.decompressobj()
        raw = d.decompress(bytes(idat))
        if not d.eof:
            return "not enough pixel data"
    except zlib.error:
        return "corrupt image data (zlib)"
    bpp_bits = depth * _CHANNELS[ct]
    rows = []  # (row count, row bytes) per pass
    for x0, y0, dx, dy in _ADAM7 if inter else ((0, 0, 1, 1),):
        pw, ph = (w - x0 + dx - 1) // dx, (h - y0 + dy - 1) // dy
        if pw > 0 and ph > 0:
            rows.append((ph, (pw * bpp_bits + 7) // 8))
    need = sum(n * (1 + rb) for n, rb in rows)
    if len(raw) < need:
        return "not enough pixel data"
    if len(raw) > need:
        return "too much pixel data"
    off = 0
    for n, rb in rows:
        for _ in range(n):
            if raw[off] > 4:
                return "bad filter type"
            off += 1 + rb
    return None


# The daemon's capture.MaxJPEGScans: each scan of a progressive JPEG is decoded over
# the whole image, so a small file repeating one scan takes minutes (libjpeg's own
# progression scripts use 10 scans for colour, 6 for grey).
MAX_JPEG_SCANS = 32


def jpeg_scans(b: bytes) -> int:
    """Start-of-scan segments in a JPEG, by walking its markers (capture.jpegScans)."""
    if len(b) < 2 or b[0] != 0xFF or b[1] != 0xD8:
        return 0
    scans, i = 0, 2
    while i + 1 < len(b):
        if b[i] != 0xFF:
            return scans
        m = b[i + 1]
        if m == 0xFF:
            i += 1
            continue
        if m == 0xD9:
            return scans
        if m == 0x01 or 0xD0 <= m <= 0xD7:
            i += 2
            continue
        if i + 3 >= len(b):
            return scans
        n = b[i + 2] << 8 | b[i + 3]
        if n < 2:
            return scans
        i += 2 + n
        if m != 0xDA:
            continue
        scans += 1
        while i + 1 < len(b):
            nxt = b.find(b"\xff", i, len(b) - 1)  # the next 0xFF that could start a marker
            if nxt < 0:
                return scans
            i = nxt
            if b[i + 1] != 0 and not 0xD0 <= b[i + 1] <= 0xD7:
                break
            i += 1
    return scans

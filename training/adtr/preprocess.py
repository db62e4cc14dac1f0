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
    thresholds are computed on exactly the daemon's input bytes, JPEG included."""

    def __init__(self, binary: str | Path) -> None:
        self.binary = Path(binary)
        if not self.binary.is_file() or not os.access(self.binary, os.X_OK):
            raise PreprocessError(f"{self.binary}: not an executable adtrd (build it with `make build`)")

    def __call__(self, path: Path, size: int, how: str = "resize") -> np.ndarray:
        if how not in FITS:
            raise PreprocessError(f"fit {how!r}: want one of {', '.join(FITS)}")
        try:
            r = subprocess.run([str(self.binary), "preprocess", "--size", str(size), "--fit", how, "--", str(path)],
                               capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise PreprocessError(f"{self.binary}: {e}") from None
        if r.returncode != 0:
            msg = r.stderr.decode(errors="replace").strip().splitlines()
            raise PreprocessError(msg[-1] if msg else f"{self.binary} preprocess exited {r.returncode}")
        if len(r.stdout) != size * size * 3:
            raise PreprocessError(f"{self.binary} preprocess wrote {len(r.stdout)} bytes, want {size * size * 3}")
        return np.frombuffer(r.stdout, np.uint8).reshape(size, size, 3).copy()

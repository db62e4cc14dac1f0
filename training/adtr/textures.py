"""Real-texture image sets in MVTec-AD layout, from the photographs GIMP ships as patterns.

Debian's `gimp-data` package (installed by `make sysdeps`) holds seamless texture
photographs in GIMP's .pat format. Each category here is one of them, tiled, scaled to
a fixed grain size, placed at a random offset and seen through synth's camera (lighting,
blur, sensor noise). Defects are of kinds synth does not make: cracks, scratches, burns, smears
and stray fibres, each painted on the surface before the camera sees it, so a defect
carries the same noise and blur as the texture around it. Cracks (1.6-2.6 px) and
scratches (0.7-1.6 px) are the thin kinds, the ones a coarse anomaly map misses.

Every image is a pure function of (seed, category, split, index), as in synth.
"""

from __future__ import annotations

import math
import os
import struct
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from . import synth
from .data import DataError
from .synth import Box, SynthSpec

PATTERNS_DIR = Path("/usr/share/gimp/2.0/patterns")

# Category -> pattern file under PATTERNS_DIR (gimp-data 2.10 on Debian 12).
TEXTURES: dict[str, str] = {
    "leather": "Animal/leather.pat",  # 64x64, dark red grained hide
    "burlap": "Fabric/burlap.pat",  # 96x96, coarse basket-woven jute
    "granite": "Stone/granite1.pat",  # 100x100 grey, black stone with white veins
    "marble": "Stone/pink_marble.pat",  # 128x128, pale pink marble with red veins
    "wood": "Wood/wood5.pat",  # 96x96, fine-grained light wood
}
CATEGORIES: tuple[str, ...] = tuple(TEXTURES)

# Magnification at 224 px (proportionally more or less at other sizes), so that one
# period of the pattern spans roughly 150-200 px: the grain a camera at a fixed
# distance would see. Each image jitters it by a few percent.
SCALE: dict[str, float] = {"leather": 2.5, "burlap": 1.6, "granite": 1.6, "marble": 1.5, "wood": 2.0}

DEFECTS: tuple[str, ...] = ("crack", "burn", "smear", "fibre", "scratch")

# Defects land with their centre in the middle 70% of the frame.
DEFECT_REGION: Box = (0.15, 0.15, 0.85, 0.85)

_PAT_MAGIC = b"GPAT"
_PAT_HEADER = struct.Struct(">5I4s")  # header_size, version, width, height, bytes per pixel, magic
_MAX_SIDE = 16384
_MAX_PIXELS = 1 << 26
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def read_pat(path: str | Path) -> np.ndarray:
    """A GIMP .pat pattern as (H, W, 3) uint8 RGB; grey is repeated, alpha dropped.

    Sizes are checked against the file before anything is allocated, so a corrupt
    header cannot ask for gigabytes.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(_PAT_HEADER.size)
        if len(head) < _PAT_HEADER.size:
            raise DataError(f"{path}: not a GIMP pattern (file is {len(head)} bytes, shorter than the header)")
        header_size, version, width, height, bpp, magic = _PAT_HEADER.unpack(head)
        if magic != _PAT_MAGIC:
            raise DataError(f"{path}: not a GIMP pattern (magic {magic!r}, expected {_PAT_MAGIC!r})")
        if version != 1:
            raise DataError(f"{path}: GIMP pattern version {version}, only version 1 is known")
        if bpp not in _MODES:
            raise DataError(f"{path}: GIMP pattern with {bpp} bytes per pixel (1 to 4 expected)")
        if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE and width * height <= _MAX_PIXELS):
            raise DataError(f"{path}: GIMP pattern declares an absurd size {width}x{height}")
        file_size = os.fstat(f.fileno()).st_size
        if not _PAT_HEADER.size <= header_size <= file_size:
            raise DataError(f"{path}: GIMP pattern header size {header_size} outside the file ({file_size} bytes)")
        need = width * height * bpp
        if file_size - header_size < need:
            raise DataError(f"{path}: truncated GIMP pattern ({file_size - header_size} bytes of pixels, "
                            f"{width}x{height}x{bpp} = {need} expected)")
        f.seek(header_size)
        pixels = f.read(need)
    if len(pixels) < need:  # the file shrank while we read it
        raise DataError(f"{path}: truncated GIMP pattern")
    img = Image.frombytes(_MODES[bpp], (width, height), pixels)
    return np.asarray(img.convert("RGB"))


def pattern_path(category: str) -> Path:
    if category not in TEXTURES:
        raise ValueError(f"unknown category {category!r} (choose from {', '.join(CATEGORIES)})")
    return PATTERNS_DIR / TEXTURES[category]


def pattern(category: str) -> np.ndarray:
    """The category's pattern; FileNotFoundError saying how to install it when missing."""
    path = pattern_path(category)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (gimp-data is installed by `make sysdeps`)")
    return _read_cached(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=16)
def _read_cached(path: str, mtime_ns: int) -> np.ndarray:
    a = read_pat(path)
    a.flags.writeable = False
    return a


def _surface(category: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """The texture as it lies on the line, before the camera: (size, size, 3) float32."""
    pat = pattern(category)
    h, w = pat.shape[:2]
    scale = size / 224 * SCALE[category] * rng.uniform(0.95, 1.05)
    angle = rng.uniform(-2.0, 2.0)  # the sheet is laid down a little askew
    # A source window wide enough that the rotated, scaled frame stays inside it.
    need = int(math.ceil(size * 1.08 / scale)) + 4
    oy, ox = int(rng.integers(0, h)), int(rng.integers(0, w))
    tiled = np.tile(pat, (need // h + 2, need // w + 2, 1))[oy : oy + need, ox : ox + need]
    if rng.random() < 0.5:
        tiled = tiled[:, ::-1]
    if rng.random() < 0.5:
        tiled = tiled[::-1]
    big = int(round(need * scale))
    img = Image.fromarray(np.ascontiguousarray(tiled)).resize((big, big), Image.BICUBIC)
    img = img.rotate(angle, resample=Image.BICUBIC)
    c = (big - size) // 2
    a = np.asarray(img.crop((c, c, c + size, c + size)), dtype=np.float32)
    # Batch to batch the material is a little more or less contrasty.
    mean = a.mean((0, 1))
    return (a - mean) * rng.uniform(0.93, 1.07) + mean


def _rngs(seed: int, category: str, split: str, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Surface and camera draw from separate streams, so a defect painted on the
    surface leaves the camera's lighting and noise as they were."""
    return synth._rng(seed, category, split, index), synth._rng(seed, category, split, index, "camera")


def good_image(category: str, size: int, seed: int, split: str, index: int) -> np.ndarray:
    """One good image (size, size, 3) uint8."""
    surface_rng, camera_rng = _rngs(seed, category, split, index)
    return synth._finish(camera_rng, _surface(category, size, surface_rng))


# ---------------------------------------------------------------- defect painting

_SS = 4  # strokes are drawn at 4x and averaged down: anti-aliased sub-pixel widths


def _coverage(size: int, draw: Callable[[ImageDraw.ImageDraw, float], None]) -> np.ndarray:
    """Float coverage in [0, 1] of strokes drawn by draw(canvas, ss) in ss-times coordinates."""
    m = Image.new("L", (size * _SS, size * _SS), 0)
    draw(ImageDraw.Draw(m), _SS)
    return np.asarray(m.resize((size, size), Image.BOX), dtype=np.float32) / 255


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    img = Image.fromarray(np.clip(a * 255, 0, 255).astype(np.uint8))
    return np.asarray(img.filter(ImageFilter.GaussianBlur(sigma)), dtype=np.float32) / 255


def _shifted(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """a moved down dy and right dx pixels, zero-filled (no wrap-around)."""
    h, w = a.shape[:2]
    out = np.zeros_like(a)
    src = a[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    out[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] = src
    return out


def _dilate(mask: np.ndarray, k: int) -> np.ndarray:
    img = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(k))
    return np.asarray(img) > 0


def _walk(rng: np.random.Generator, start: tuple[float, float], heading: float, length: float, step: float,
          jitter: float, drift: float) -> list[tuple[float, float]]:
    """A path of length/step steps: each step's direction is the heading, a slowly
    drifting bend and a per-step jitter (jagged for cracks, smooth for strokes)."""
    x, y = start
    pts = [(x, y)]
    bend = 0.0
    for _ in range(max(2, int(length / step))):
        bend = 0.9 * bend + rng.normal(0, drift)
        t = heading + bend + rng.normal(0, jitter)
        x, y = x + math.cos(t) * step, y + math.sin(t) * step
        pts.append((x, y))
    return pts


def _tapered(draw: ImageDraw.ImageDraw, ss: float, pts: list[tuple[float, float]], w0: float, w1: float) -> None:
    """A polyline whose width goes from w0 to w1, with round joints."""
    n = len(pts) - 1
    for i in range(n):
        w = max(0.3, w0 + (w1 - w0) * i / max(1, n - 1)) * ss
        (x0, y0), (x1, y1) = pts[i], pts[i + 1]
        draw.line([(x0 * ss, y0 * ss), (x1 * ss, y1 * ss)], fill=255, width=max(1, int(round(w))))
        r = w / 2
        draw.ellipse([x1 * ss - r, y1 * ss - r, x1 * ss + r, y1 * ss + r], fill=255)


# Wood splits along its grain (horizontal in the pattern, and flips keep it so).
CRACK_GRAIN: dict[str, float] = {"wood": 0.0}


def _crack(rng: np.random.Generator, img: np.ndarray, box: Box, category: str) -> tuple[np.ndarray, np.ndarray]:
    """A jagged dark fissure with a branch or two; its lips catch the light on one side."""
    size = img.shape[0]
    px = size / 224
    length = rng.uniform(0.28, 0.45) * size
    grain = CRACK_GRAIN.get(category)
    heading = rng.uniform(0, 2 * np.pi) if grain is None else grain + rng.choice([0.0, np.pi]) + rng.normal(0, 0.12)
    cx, cy = synth._centre(rng, size, box)
    start = (cx - math.cos(heading) * length / 2, cy - math.sin(heading) * length / 2)
    main = _walk(rng, start, heading, length, 2.0 * px, jitter=0.3, drift=0.06)
    width = rng.uniform(1.6, 2.6) * px
    branches = []
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(len(main) // 5, 4 * len(main) // 5))
        side = rng.choice([-1.0, 1.0])
        b_heading = heading + side * rng.uniform(0.4, 1.0)
        b_length = length * rng.uniform(0.2, 0.45)
        branches.append(_walk(rng, main[i], b_heading, b_length, 2.0 * px, jitter=0.35, drift=0.1))

    def draw(d: ImageDraw.ImageDraw, ss: float) -> None:
        # Widest in the middle, closing to a hairline at both tips.
        half = len(main) // 2
        _tapered(d, ss, main[: half + 1][::-1], width, 0.6 * px)
        _tapered(d, ss, main[half:], width, 0.6 * px)
        for b in branches:
            _tapered(d, ss, b, 0.7 * width, 0.4 * px)

    alpha = _coverage(size, draw)
    depth = rng.uniform(0.6, 0.8)
    # Relief: the blurred crack's slope towards a light from the top left, bright on
    # the lip facing it and shaded on the other.
    g = _blur(alpha, 1.0 * px)
    slope = g - _shifted(g, 1, 1)
    relief = rng.uniform(70, 110) * slope * (1 - alpha)
    out = img * (1 - depth * alpha[..., None]) + relief[..., None]
    return out, _dilate((alpha > 0.3) | (np.abs(relief) > 10), 3)


def _smoothstep(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((a - lo) / (hi - lo), 0, 1)
    return t * t * (3 - 2 * t)


def _burn(rng: np.random.Generator, img: np.ndarray, box: Box, category: str) -> tuple[np.ndarray, np.ndarray]:
    """A scorch: a charred core in a wider halo, browned and desaturated, fading out
    through yellowish brown to a ragged rim."""
    size = img.shape[0]
    r = rng.uniform(0.03, 0.05) * size
    aspect, theta = rng.uniform(1.0, 1.8), rng.uniform(0, np.pi)
    cx, cy = synth._centre(rng, size, box)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    u = (dx * math.cos(theta) + dy * math.sin(theta)) / (r * aspect)
    v = (-dx * math.sin(theta) + dy * math.cos(theta)) / r
    # The heat reached further in some places than others: a ragged rim and a patchy core.
    ragged = 0.25 * synth._smooth_noise(rng, size, max(1.0, 0.5 * r))
    ragged += 0.2 * synth._smooth_noise(rng, size, max(1.0, 0.2 * r))
    d = np.sqrt(u * u + v * v) * (1 + ragged)
    heat = np.exp(-0.5 * d * d) * (1 + 0.15 * synth._smooth_noise(rng, size, max(1.0, 0.1 * r)))
    brown = _smoothstep(heat, 0.1, 0.45)[..., None]
    inner = _smoothstep(heat, 0.5, 0.95)[..., None]
    char = _smoothstep(heat, 0.8, 1.05)[..., None] * rng.uniform(0.3, 0.75)
    lum = img.mean(-1, keepdims=True)
    grey = 0.3 * img + 0.7 * lum  # the texture's own shading, mostly desaturated
    outer_tint = np.array([1.0, 0.74, 0.44], np.float32) * rng.uniform(0.75, 0.88)
    inner_tint = np.array([0.75, 0.48, 0.28], np.float32) * rng.uniform(0.4, 0.55)
    tint = outer_tint * (1 - inner) + inner_tint * inner
    out = img * (1 - brown) + grey * tint * brown
    soot = np.array([24, 18, 15], np.float32) + 8 * synth._smooth_noise(rng, size, 0.7)[..., None]
    out = out * (1 - char) + soot * char
    return out, brown[..., 0] > 0.12


def _shift_mean(img: np.ndarray, direction: tuple[float, float], n: int) -> np.ndarray:
    """Mean of img and its copies pulled 1..n pixels from upstream along direction."""
    pad = n + 1
    p = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    size = img.shape[0]
    acc = np.zeros_like(img)
    for k in range(n + 1):
        dy, dx = int(round(k * direction[1])), int(round(k * direction[0]))
        acc += p[pad - dy : pad - dy + size, pad - dx : pad - dx + size]
    return acc / (n + 1)


def _smear(rng: np.random.Generator, img: np.ndarray, box: Box, category: str) -> tuple[np.ndarray, np.ndarray]:
    """A smudge: the texture dragged along a short stroke, its detail streaked out."""
    size = img.shape[0]
    px = size / 224
    heading = rng.uniform(0, 2 * np.pi)
    length = rng.uniform(0.16, 0.28) * size
    width = rng.uniform(0.07, 0.11) * size
    cx, cy = synth._centre(rng, size, box)
    start = (cx - math.cos(heading) * length / 2, cy - math.sin(heading) * length / 2)
    path = _walk(rng, start, heading, length, 3 * px, jitter=0.02, drift=0.04)

    def draw(d: ImageDraw.ImageDraw, ss: float) -> None:
        _tapered(d, ss, path, width, 0.5 * width)  # a finger's stroke: wide where it pressed

    alpha = _blur(_coverage(size, draw), 2.0 * px)
    drag = _shift_mean(img, (math.cos(heading), math.sin(heading)), max(3, int(rng.uniform(0.1, 0.16) * size)))
    drag = _blur(drag / 255, px) * 255  # and a little softened across, as a fingertip leaves it
    # A smudge leaves a greasy film: a little brighter, and hazy, most visibly on dark surfaces.
    drag = drag * rng.uniform(1.0, 1.06)
    drag = drag + rng.uniform(0.05, 0.1) * (255 - drag)
    out = img * (1 - alpha[..., None]) + drag * alpha[..., None]
    return out, alpha > 0.25


# Muted, as dyed threads and hairs are: black hair, off-white cotton, denim, faded red, olive.
FIBRE_COLOURS = np.array([[32, 26, 22], [226, 220, 204], [72, 92, 140], [150, 52, 46], [96, 110, 70]], np.float32)
HAIR_COLOURS = np.array([[34, 26, 22], [190, 170, 135]], np.float32)


def _fibre(rng: np.random.Generator, img: np.ndarray, box: Box, category: str) -> tuple[np.ndarray, np.ndarray]:
    """A stray thread or hair lying on the surface, casting a thin shadow."""
    size = img.shape[0]
    px = size / 224
    length = rng.uniform(0.3, 0.5) * size
    heading = rng.uniform(0, 2 * np.pi)
    cx, cy = synth._centre(rng, size, box)
    # A cubic Bezier bowed sideways (a C or an S), with a fine kinkiness along it.
    ux, uy = math.cos(heading), math.sin(heading)
    p0 = np.array([cx - ux * length / 2, cy - uy * length / 2])
    p3 = np.array([cx + ux * length / 2, cy + uy * length / 2])
    normal = np.array([-uy, ux])
    p1 = p0 + (p3 - p0) / 3 + normal * rng.uniform(-0.35, 0.35) * length
    p2 = p0 + 2 * (p3 - p0) / 3 + normal * rng.uniform(-0.35, 0.35) * length
    n = 120
    t = np.linspace(0, 1, n)[:, None]
    curve = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
    kink = np.convolve(rng.normal(0, 1, n + 14), np.ones(15) / math.sqrt(15), mode="valid")[:n, None]
    curve = curve + normal * kink * rng.uniform(0.4, 1.0) * px
    pts = [(float(x), float(y)) for x, y in curve]
    hair = rng.random() < 0.4  # a hair, thin; else a thread of some dyed colour
    width = (rng.uniform(1.1, 1.6) if hair else rng.uniform(1.6, 2.6)) * px
    half = n // 2

    def draw(d: ImageDraw.ImageDraw, ss: float) -> None:
        _tapered(d, ss, pts[: half + 1][::-1], width, 0.6 * width)
        _tapered(d, ss, pts[half:], width, (0.3 if hair else 0.7) * width)

    alpha = _coverage(size, draw) * rng.uniform(0.85, 1.0)
    off = max(1, int(round(1.5 * px)))
    shadow = _blur(_shifted(alpha, off, off), 1.0 * px)
    if hair:  # dark or fair, whichever shows on this surface
        colour = HAIR_COLOURS[int(np.argmax(np.abs(HAIR_COLOURS - img.reshape(-1, 3).mean(0)).sum(1)))]
    else:
        # A colour foreign to this surface: one of the three farthest from its mean colour.
        far = np.argsort(-np.abs(FIBRE_COLOURS - img.reshape(-1, 3).mean(0)).sum(1))[:3]
        colour = FIBRE_COLOURS[int(rng.choice(far))]
    # Along its length the fibre twists and catches more or less light.
    sheen = 1 + 0.2 * synth._smooth_noise(rng, size, 2.0)
    fibre = colour * rng.uniform(0.9, 1.1) * sheen[..., None]
    shaded = img * (1 - 0.35 * shadow[..., None])
    out = shaded * (1 - alpha[..., None]) + fibre * alpha[..., None]
    return out, _dilate((alpha > 0.3) | (shadow > 0.2), 3)


# Scratch widths in pixels at 224 (scaled with the image): a hairline under a pixel,
# whose coverage only dims a pixel, a fine one and a medium one. Each image draws one,
# so the scratch kind's AUROC is over all three widths.
SCRATCH_WIDTHS: tuple[float, ...] = (0.7, 1.1, 1.6)


def _scratch(rng: np.random.Generator, img: np.ndarray, box: Box, category: str) -> tuple[np.ndarray, np.ndarray]:
    """A tool scratch: a long, almost straight groove SCRATCH_WIDTHS wide, lighter where
    the surface layer is cut away, with a faint shadow along one lip."""
    size = img.shape[0]
    px = size / 224
    length = rng.uniform(0.35, 0.6) * size
    heading = rng.uniform(0, 2 * np.pi)
    cx, cy = synth._centre(rng, size, box)
    start = (cx - math.cos(heading) * length / 2, cy - math.sin(heading) * length / 2)
    path = _walk(rng, start, heading, length, 3.0 * px, jitter=0.01, drift=0.01)
    width = float(rng.choice(SCRATCH_WIDTHS)) * px

    def draw(d: ImageDraw.ImageDraw, ss: float) -> None:
        _tapered(d, ss, path, width, 0.6 * width)  # the tool lifting off at the end

    alpha = _coverage(size, draw)
    shadow = _blur(_shifted(alpha, 1, 1), 0.7 * px) * (1 - alpha)
    cut = img + rng.uniform(0.25, 0.45) * (255 - img)  # the paler material under the surface
    out = img * (1 - 0.3 * shadow[..., None])
    out = out * (1 - alpha[..., None]) + cut * alpha[..., None]
    return out, _dilate(alpha > 0.15, 3)


# Each paints its defect on a surface (float RGB) and returns it with a bool mask of where it is.
DEFECT_MAKERS: dict[str, Callable[[np.random.Generator, np.ndarray, Box, str], tuple[np.ndarray, np.ndarray]]] = {
    "crack": _crack,
    "burn": _burn,
    "smear": _smear,
    "fibre": _fibre,
    "scratch": _scratch,
}


def defect_image(category: str, defect: str, size: int, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """One defective image and its binary mask (H, W) uint8 in {0, 255}.

    Without the defect it would be good_image(category, size, seed, f"test-{defect}", index).
    """
    if defect not in DEFECT_MAKERS:
        raise ValueError(f"unknown defect {defect!r} (choose from {', '.join(DEFECTS)})")
    surface_rng, camera_rng = _rngs(seed, category, f"test-{defect}", index)
    surface = _surface(category, size, surface_rng)
    out, mask = DEFECT_MAKERS[defect](synth._rng(seed, category, defect, index), surface, DEFECT_REGION, category)
    return synth._finish(camera_rng, np.clip(out, 0, 255)), mask.astype(np.uint8) * 255


def write_category(root: Path, spec: SynthSpec) -> Path:
    """Write one category in MVTec-AD layout under root/category; returns that folder
    (synth.write_mvtec: built beside and renamed into place; an existing one is refused)."""
    pattern(spec.category)  # unknown category or missing gimp-data: say so before writing anything
    return synth.write_mvtec(root, spec, good_image, defect_image, DEFECTS)


def write_all(root: Path, size: int = 224, n_train: int = 60, n_test_good: int = 20, n_test_defect: int = 6,
              seed: int = 0, categories: Sequence[str] = CATEGORIES) -> list[Path]:
    """Every category (or those given) under root; sized by default for training a
    small model per category on two CPU cores."""
    root = Path(root)
    for c in categories:  # refuse before writing any: a missing pattern, a folder already there
        pattern(c)
        if (root / c).exists():
            raise FileExistsError(f"{root / c}: already exists")
    return [write_category(root, SynthSpec(c, size, n_train, n_test_good, n_test_defect, seed)) for c in categories]

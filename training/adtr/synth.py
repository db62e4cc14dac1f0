"""Seeded generator of line-like image sets in MVTec-AD layout.

Every image is a pure function of (seed, category, split, index), so a set can be
regrown bit for bit and a count can change without reshuffling the other images.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CATEGORIES: tuple[str, ...] = ("weave", "brushed_metal", "printed_part")
DEFECTS: tuple[str, ...] = ("scratch", "stain", "hole", "cut_paste")


@dataclass(frozen=True)
class SynthSpec:
    """How many images of which size to make for one category."""

    category: str
    size: int = 224
    n_train: int = 100
    n_test_good: int = 20
    n_test_defect: int = 8
    seed: int = 0


def _rng(seed: int, *keys: object) -> np.random.Generator:
    # Stable across Python runs: str hashes are salted, so hash bytes ourselves.
    material = "/".join([str(seed), *map(str, keys)]).encode()
    return np.random.default_rng(list(material))


def _smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Low-frequency noise in [-1, 1], by blurring white noise with a Gaussian."""
    img = Image.fromarray(((rng.random((size, size)) * 255).astype(np.uint8)))
    img = img.filter(ImageFilter.GaussianBlur(scale))
    a = np.asarray(img, dtype=np.float32)
    a -= a.mean()
    m = np.abs(a).max()
    return a / m if m > 0 else a


def _lighting(rng: np.random.Generator, size: int) -> np.ndarray:
    """A gentle illumination field: gain around 1 with a linear gradient."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    # A line's lighting is controlled: a few percent of drift, not a different scene.
    gx, gy = rng.uniform(-0.06, 0.06, 2)
    gain = rng.uniform(0.95, 1.05)
    return gain * (1.0 + gx * (xx - 0.5) + gy * (yy - 0.5))


def _finish(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Sensor effects shared by all categories: lighting, blur, noise, 8-bit."""
    size = rgb.shape[0]
    rgb = rgb * _lighting(rng, size)[..., None]
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    blur = rng.uniform(0.0, 0.8)
    if blur > 0.2:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    a = np.asarray(img, dtype=np.float32)
    a += rng.normal(0, rng.uniform(1.5, 4.0), a.shape)
    return np.clip(a, 0, 255).astype(np.uint8)


def _weave(rng: np.random.Generator, size: int) -> np.ndarray:
    """Plain-weave fabric: warp and weft threads alternating over and under."""
    period = rng.uniform(11.0, 13.0)
    angle = math.radians(rng.uniform(-3, 3))
    off = rng.uniform(0, period, 2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    u = math.cos(angle) * xx + math.sin(angle) * yy + off[0]
    v = -math.sin(angle) * xx + math.cos(angle) * yy + off[1]
    cu, cv = np.floor(u / period), np.floor(v / period)
    fu, fv = (u / period) % 1.0, (v / period) % 1.0
    warp_on_top = ((cu + cv) % 2) == 0
    # Each thread is a rounded bump across its width, brightest at its centre.
    warp = np.sin(np.pi * fu) ** 0.7
    weft = np.sin(np.pi * fv) ** 0.7
    h = np.where(warp_on_top, warp * (0.75 + 0.25 * np.sin(np.pi * fv)), weft * (0.75 + 0.25 * np.sin(np.pi * fu)))
    fibre = _smooth_noise(rng, size, 0.8) * 0.08
    h = h + fibre
    # One fabric per line: a fixed dye, with batch-to-batch jitter.
    base = np.array([150, 120, 90], dtype=np.float32) * rng.uniform(0.94, 1.06, 3)
    rgb = (0.45 + 0.65 * h)[..., None] * base
    return _finish(rng, rgb)


def _brushed_metal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Brushed aluminium: streaks along one axis and a soft specular band."""
    pad = size // 2
    big = size + 2 * pad
    streak = rng.normal(0, 1, (big, big)).astype(np.float32)
    k = 41
    # Streaks: a long box blur along x only, by cumulative sums; x sqrt(k) keeps unit variance.
    c = np.cumsum(np.pad(streak, ((0, 0), (k, 0))), axis=1)
    streak = (c[:, k:] - c[:, :-k]) / math.sqrt(k)
    img = Image.fromarray(np.clip(128 + 40 * streak, 0, 255).astype(np.uint8))
    img = img.rotate(rng.uniform(-3, 3), resample=Image.BILINEAR)
    a = np.asarray(img, dtype=np.float32)[pad : pad + size, pad : pad + size]
    a = (a - 128) / 40
    yy = np.mgrid[0:size, 0:size][0].astype(np.float32) / size
    centre = rng.uniform(0.3, 0.7)
    band = np.exp(-((yy - centre) ** 2) / (2 * rng.uniform(0.08, 0.15) ** 2))
    level = 140 + 50 * band + 10 * a
    tint = np.array([1.0, 1.0, 1.04], np.float32) * rng.uniform(0.95, 1.05)
    return _finish(rng, level[..., None] * tint)


def _part_geometry(rng: np.random.Generator, size: int) -> tuple[float, float, float, float]:
    """Where the part sits on the belt: centre, half-size and rotation (degrees)."""
    cx = size / 2 + rng.uniform(-0.02, 0.02) * size
    cy = size / 2 + rng.uniform(-0.02, 0.02) * size
    return cx, cy, size * 0.34, rng.uniform(-2.5, 2.5)


def _printed_part(rng: np.random.Generator, size: int) -> np.ndarray:
    """A moulded plate with a printed mark, lying on a dark rubber belt."""
    belt = 55 + 10 * _smooth_noise(rng, size, 1.2) + 6 * _smooth_noise(rng, size, 6)
    rgb = np.repeat(belt[..., None], 3, axis=2) * np.array([1.0, 1.0, 1.05], np.float32)
    cx, cy, half, rot = _part_geometry(rng, size)
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    body = tuple(int(v) for v in rng.uniform(192, 200) + rng.uniform(-3, 3, 3)) + (255,)
    draw.rounded_rectangle([cx - half, cy - half * 0.8, cx + half, cy + half * 0.8], radius=half * 0.2, fill=body)
    ink = (30, 60, 150, 255)
    r = half * 0.28
    draw.ellipse([cx - half * 0.7, cy - r, cx - half * 0.7 + 2 * r, cy + r], outline=ink, width=max(2, size // 60))
    for i in range(3):
        y = cy - half * 0.35 + i * half * 0.3
        draw.rectangle([cx - half * 0.05, y, cx + half * 0.7 - i * half * 0.15, y + half * 0.12], fill=ink)
    layer = layer.rotate(rot, resample=Image.BILINEAR, center=(cx, cy))
    a = np.asarray(layer, dtype=np.float32)
    alpha = a[..., 3:4] / 255
    rgb = rgb * (1 - alpha) + a[..., :3] * alpha
    rgb += 3 * _smooth_noise(rng, size, 2)[..., None] * alpha
    return _finish(rng, rgb)


# Where defects land: anywhere on a texture, on the part (not the belt) for printed_part.
DEFECT_REGION: dict[str, Box] = {
    "weave": (0.15, 0.15, 0.85, 0.85),
    "brushed_metal": (0.15, 0.15, 0.85, 0.85),
    "printed_part": (0.27, 0.32, 0.73, 0.68),
}

GENERATORS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "weave": _weave,
    "brushed_metal": _brushed_metal,
    "printed_part": _printed_part,
}


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the frame


def _centre(rng: np.random.Generator, size: int, box: Box) -> tuple[float, float]:
    return rng.uniform(box[0], box[2]) * size, rng.uniform(box[1], box[3]) * size


def _blob_mask(rng: np.random.Generator, size: int, radius: float, box: Box) -> np.ndarray:
    """An irregular closed blob (float mask in [0,1]) centred inside box."""
    cx, cy = _centre(rng, size, box)
    n = 14
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    radii = radius * rng.uniform(0.6, 1.3, n)
    pts = [(cx + r * math.cos(t), cy + r * math.sin(t)) for r, t in zip(radii, angles)]
    m = Image.new("L", (size, size), 0)
    ImageDraw.Draw(m).polygon(pts, fill=255)
    m = m.filter(ImageFilter.GaussianBlur(1.0))
    return np.asarray(m, dtype=np.float32) / 255


def _scratch(rng: np.random.Generator, img: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    m = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(m)
    heading = rng.uniform(0, 2 * np.pi)
    length = rng.uniform(0.2, 0.35) * size
    steps = 12
    # Start half a length back from a centre in the box, so the scratch stays on the part.
    cx, cy = _centre(rng, size, box)
    x, y = cx - math.cos(heading) * length / 2, cy - math.sin(heading) * length / 2
    pts = [(x, y)]
    for _ in range(steps):
        heading += rng.normal(0, 0.15)
        x += math.cos(heading) * length / steps
        y += math.sin(heading) * length / steps
        pts.append((x, y))
    draw.line(pts, fill=255, width=int(rng.integers(2, 4)), joint="curve")
    alpha = np.asarray(m, dtype=np.float32) / 255
    shade = rng.choice([-1.0, 1.0]) * rng.uniform(70, 110)
    out = img.astype(np.float32) + shade * alpha[..., None]
    return out, alpha


def _stain(rng: np.random.Generator, img: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    alpha = _blob_mask(rng, size, rng.uniform(0.05, 0.09) * size, box)
    colour = np.array(rng.choice([[120, 80, 30], [40, 40, 40], [160, 140, 60], [90, 30, 30]]), np.float32)
    strength = rng.uniform(0.55, 0.8)
    out = img * (1 - strength * alpha[..., None]) + colour * strength * alpha[..., None]
    return out, alpha


def _hole(rng: np.random.Generator, img: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    alpha = _blob_mask(rng, size, rng.uniform(0.04, 0.07) * size, box)
    depth = rng.uniform(10, 30)
    inside = depth + 8 * _smooth_noise(rng, size, 1.0)
    rim = np.clip(np.asarray(Image.fromarray((alpha * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(5)), np.float32) / 255 - alpha, 0, 1)
    out = img * (1 - alpha[..., None]) + inside[..., None] * alpha[..., None]
    out = out + 40 * rim[..., None]
    return out, np.clip(alpha + rim, 0, 1)


def _cut_paste(rng: np.random.Generator, img: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """A patch of the same image pasted elsewhere, rotated: a misprint or misplaced piece."""
    size = img.shape[0]
    pw, ph = (rng.uniform(0.12, 0.22, 2) * size).astype(int)
    sx, sy = rng.integers(0, size - pw), rng.integers(0, size - ph)
    patch = Image.fromarray(img.astype(np.uint8)[sy : sy + ph, sx : sx + pw])
    patch = patch.rotate(rng.uniform(25, 155), resample=Image.BILINEAR, expand=True)
    # The rotated patch's own non-black region is its footprint.
    footprint = Image.fromarray((np.asarray(patch.convert("L")) > 0).astype(np.uint8) * 255)
    cx, cy = _centre(rng, size, box)
    dx = int(np.clip(cx - patch.size[0] / 2, 0, size - patch.size[0]))
    dy = int(np.clip(cy - patch.size[1] / 2, 0, size - patch.size[1]))
    canvas = Image.fromarray(img.astype(np.uint8))
    adjust = rng.uniform(0.75, 1.25)
    patch = Image.fromarray(np.clip(np.asarray(patch, np.float32) * adjust, 0, 255).astype(np.uint8))
    canvas.paste(patch, (int(dx), int(dy)), footprint)
    m = Image.new("L", (size, size), 0)
    m.paste(footprint, (int(dx), int(dy)))
    return np.asarray(canvas, np.float32), np.asarray(m, np.float32) / 255


DEFECT_MAKERS: dict[str, Callable[[np.random.Generator, np.ndarray, Box], tuple[np.ndarray, np.ndarray]]] = {
    "scratch": _scratch,
    "stain": _stain,
    "hole": _hole,
    "cut_paste": _cut_paste,
}


def good_image(category: str, size: int, seed: int, split: str, index: int) -> np.ndarray:
    """One good image (H, W, 3) uint8."""
    if category not in GENERATORS:
        raise ValueError(f"unknown category {category!r} (choose from {', '.join(CATEGORIES)})")
    return GENERATORS[category](_rng(seed, category, split, index), size)


def defect_image(category: str, defect: str, size: int, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """One defective image and its binary mask (H, W) uint8 in {0, 255}."""
    if defect not in DEFECT_MAKERS:
        raise ValueError(f"unknown defect {defect!r} (choose from {', '.join(DEFECTS)})")
    base = good_image(category, size, seed, f"test-{defect}", index)
    out, alpha = DEFECT_MAKERS[defect](_rng(seed, category, defect, index), base, DEFECT_REGION[category])
    mask = (alpha > 0.5).astype(np.uint8) * 255
    return np.clip(out, 0, 255).astype(np.uint8), mask


def write_category(root: Path, spec: SynthSpec) -> Path:
    """Write one category in MVTec-AD layout under root/category; returns that folder."""
    return write_mvtec(root, spec, good_image, defect_image, DEFECTS)


def write_mvtec(root: Path, spec: SynthSpec, good: Callable[[str, int, int, str, int], np.ndarray],
                defect: Callable[[str, str, int, int, int], tuple[np.ndarray, np.ndarray]], defects: Sequence[str]) -> Path:
    """Write spec's images, made by good(category, size, seed, split, index) and
    defect(category, kind, size, seed, index), in MVTec-AD layout under root/category.

    The set is built in a temporary sibling folder and renamed into place, so an
    interrupted run leaves nothing half-written; an existing folder is refused.
    """
    dest = root / spec.category
    if dest.exists():
        raise FileExistsError(f"{dest}: already exists")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.category}.", dir=root))
    try:
        def save(a: np.ndarray, rel: str) -> None:
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(p)

        for i in range(spec.n_train):
            save(good(spec.category, spec.size, spec.seed, "train", i), f"train/good/{i:03d}.png")
        for i in range(spec.n_test_good):
            save(good(spec.category, spec.size, spec.seed, "test", i), f"test/good/{i:03d}.png")
        for kind in defects:
            for i in range(spec.n_test_defect):
                img, mask = defect(spec.category, kind, spec.size, spec.seed, i)
                save(img, f"test/{kind}/{i:03d}.png")
                save(mask, f"ground_truth/{kind}/{i:03d}_mask.png")
        # mkdtemp makes the folder 0700; the data set gets the mode a plain mkdir would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest

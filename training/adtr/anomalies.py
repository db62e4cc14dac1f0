"""Synthetic anomalies for ADTR+ when a line has not collected real ones yet.

DRAEM-style: a thresholded smooth-noise mask filled with foreign texture (another good
image, recoloured, or confetti noise). Deliberately unlike synth.py's defect makers, so
that evaluating on synth's test split does not reward learning the test defects.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter


def _noise_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    scale = rng.choice([4.0, 6.0, 9.0])
    raw = Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(scale))
    a = np.asarray(raw, np.float32)
    a = (a - a.mean()) / (a.std() + 1e-6)
    m = (a > rng.uniform(1.2, 1.8)).astype(np.float32)
    if m.sum() < 30:  # always some anomaly: fall back to a rectangle
        y, x = rng.integers(0, size - 24, 2)
        m[y : y + 24, x : x + 24] = 1
    return m


def make(images: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """count anomalous images (uint8) and masks ({0,1}) from good images."""
    rng = np.random.default_rng(seed)
    n, size = len(images), images.shape[1]
    out = np.empty((count,) + images.shape[1:], np.uint8)
    masks = np.empty((count, size, size), np.uint8)
    for i in range(count):
        base = images[rng.integers(n)].astype(np.float32)
        m = _noise_mask(rng, size)
        if rng.random() < 0.5:
            src = images[rng.integers(n)].astype(np.float32)
            src = np.rot90(src, int(rng.integers(1, 4)))
            fill = src * rng.uniform(0.5, 1.5, 3)
        else:
            fill = rng.uniform(0, 255, 3) + rng.normal(0, 30, base.shape)
        beta = rng.uniform(0.3, 1.0)
        mixed = base * (1 - beta * m[..., None]) + fill * beta * m[..., None]
        out[i] = np.clip(mixed, 0, 255).astype(np.uint8)
        masks[i] = m.astype(np.uint8)
    return out, masks

"""From the graph's low-resolution anomaly map to a pixel map and an image score.

This is the reference the Go daemon reproduces: bilinear upsampling with aligned
corners (UniAD's nn.UpsamplingBilinear2d), average pooling with stride 1 and no
padding, then the maximum (ADTR section 3.1).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

UPSAMPLE = "bilinear-align-corners"


def _axis_weights(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if dst == 1 or src == 1:
        pos = np.zeros(dst, np.float64)
    else:
        pos = np.arange(dst, dtype=np.float64) * (src - 1) / (dst - 1)
    i0 = np.floor(pos).astype(np.int64)
    i0 = np.minimum(i0, src - 1)
    i1 = np.minimum(i0 + 1, src - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def upsample(maps: np.ndarray, size: int) -> np.ndarray:
    """(N, g, g) or (g, g) -> (..., size, size), bilinear with aligned corners."""
    m = np.asarray(maps, np.float32)
    g = m.shape[-1]
    y0, y1, wy = _axis_weights(g, size)
    rows = m[..., y0, :] * (1 - wy)[:, None] + m[..., y1, :] * wy[:, None]
    return rows[..., y0] * (1 - wy) + rows[..., y1] * wy


def image_scores(up: np.ndarray, kernel: int) -> np.ndarray:
    """Max of the stride-1, unpadded kernel x kernel average pool of each map."""
    up = np.asarray(up, np.float64)
    single = up.ndim == 2
    if single:
        up = up[None]
    ii = np.zeros((up.shape[0], up.shape[1] + 1, up.shape[2] + 1))
    ii[:, 1:, 1:] = up.cumsum(1).cumsum(2)
    k = kernel
    sums = ii[:, k:, k:] - ii[:, :-k, k:] - ii[:, k:, :-k] + ii[:, :-k, :-k]
    out = sums.reshape(len(up), -1).max(1) / (k * k)
    return out[0] if single else out


def score_maps(maps: np.ndarray, size: int, kernel: int) -> tuple[np.ndarray, np.ndarray]:
    """Low-resolution maps -> (pixel maps, image scores)."""
    up = upsample(maps, size)
    return up, image_scores(up, kernel)


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(roc_auc_score(np.asarray(labels).ravel(), np.asarray(scores).ravel()))


def pixel_auroc(masks: np.ndarray, pixel_maps: np.ndarray) -> float:
    return auroc(masks.astype(np.uint8), pixel_maps.astype(np.float32))

"""The simple detectors ADTR must beat, on the same backbone features: PaDiM and a
nearest-neighbour memory (PatchCore). Float only, for `python -m adtr compare`.

Both take features (N, g, g, C) as ADTR.features gives them and return anomaly maps
(N, g, g) on ADTR's grid, so scoring.score_maps turns them into image scores exactly
as it does ADTR's maps and the numbers compare like for like.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PaDiM:
    """A Gaussian per grid location (Defard et al., ICPR 2020, sec. 3): the map is the
    Mahalanobis distance of each location's feature to its location's mean, with the
    covariance regularised by `eps` I (the paper's 0.01)."""

    eps: float = 0.01
    mean: np.ndarray | None = None  # (g, g, C)
    inv_cov: np.ndarray | None = None  # (g, g, C, C)

    def fit(self, feats: np.ndarray) -> "PaDiM":
        n, g1, g2, c = feats.shape
        if n < 2:
            raise ValueError(f"PaDiM needs at least 2 good images, got {n}")
        x = feats.astype(np.float64)
        self.mean = x.mean(0)
        d = (x - self.mean).transpose(1, 2, 0, 3)  # (g, g, N, C)
        cov = np.einsum("ijnc,ijnd->ijcd", d, d) / (n - 1) + self.eps * np.eye(c)
        self.inv_cov = np.linalg.inv(cov)
        return self

    def maps(self, feats: np.ndarray) -> np.ndarray:
        if self.mean is None or self.inv_cov is None:
            raise ValueError("PaDiM: fit before maps")
        d = feats.astype(np.float64) - self.mean
        m = np.einsum("nijc,ijcd,nijd->nij", d, self.inv_cov, d)
        return np.sqrt(np.maximum(m, 0)).astype(np.float32)


def coreset(tokens: np.ndarray, k: int, seed: int = 0, project: int = 128) -> np.ndarray:
    """Indices of k tokens chosen by greedy k-centre (PatchCore, Roth et al., CVPR 2022,
    sec. 3.2): each pick is the token farthest from those already picked, measured on a
    Johnson-Lindenstrauss random projection to `project` dimensions as the paper does."""
    n, c = tokens.shape
    k = min(k, n)
    rng = np.random.default_rng(seed)
    x = tokens.astype(np.float32)
    if c > project:
        x = x @ (rng.standard_normal((c, project)).astype(np.float32) / np.sqrt(project))
    chosen = np.empty(k, np.int64)
    chosen[0] = rng.integers(n)
    dist = ((x - x[chosen[0]]) ** 2).sum(1)
    for i in range(1, k):
        chosen[i] = int(dist.argmax())
        dist = np.minimum(dist, ((x - x[chosen[i]]) ** 2).sum(1))
    return chosen


@dataclass
class NearestNeighbour:
    """A memory of good tokens, coreset-subsampled to `fraction` of them; the map is each
    location's Euclidean distance to its nearest memory token (PatchCore's patch score,
    without its reweighting, which changes the image score only)."""

    fraction: float = 0.1
    seed: int = 0
    memory: np.ndarray | None = None  # (M, C)

    def fit(self, feats: np.ndarray) -> "NearestNeighbour":
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction {self.fraction}: must be in (0, 1]")
        tokens = feats.reshape(-1, feats.shape[-1]).astype(np.float32)
        k = max(1, int(round(len(tokens) * self.fraction)))
        self.memory = tokens[coreset(tokens, k, self.seed)] if k < len(tokens) else tokens
        return self

    def maps(self, feats: np.ndarray, batch: int = 4096) -> np.ndarray:
        if self.memory is None:
            raise ValueError("NearestNeighbour: fit before maps")
        q = feats.reshape(-1, feats.shape[-1]).astype(np.float32)
        mm = (self.memory**2).sum(1)
        out = np.empty(len(q), np.float32)
        for i in range(0, len(q), batch):
            b = q[i : i + batch]
            d2 = (b**2).sum(1)[:, None] - 2 * b @ self.memory.T + mm[None]
            out[i : i + batch] = np.sqrt(np.maximum(d2.min(1), 0))
        return out.reshape(feats.shape[:-1])

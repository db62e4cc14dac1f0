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


# Bounds on a memory token's density weight: the coreset spreads its picks, so the
# weights measured on the real-texture categories stay within 0.70-1.16 (README); the
# bounds only keep a degenerate memory (every token alike) from dividing by nothing.
DENSITY_BOUNDS = (0.25, 4.0)


def density_weights(memory: np.ndarray, k: int, batch: int = 2048) -> np.ndarray:
    """The weight w_m = mean(r) / r_m of each memory token m (M,), where r_m is the mean
    distance from m to its k nearest other memory tokens: a token that sits where good
    tokens are dense (small r_m) has a large weight, so a distance to it counts for more.
    It is the local-density idea of the local outlier factor (Breunig et al., SIGMOD
    2000, sec. 4), taken one step: the anomaly map's distance to the nearest memory token
    is divided by that token's neighbourhood radius. Copies of a token (a memory filled
    by repeating too few tokens) count as one token. Weights lie in DENSITY_BOUNDS."""
    if k < 1:
        raise ValueError(f"density k {k}: must be at least 1")
    m = len(memory)
    kk = min(k, m - 1)
    if kk < 1:
        return np.ones(m, np.float32)
    x = memory.astype(np.float64)
    sq = (x**2).sum(1)
    r = np.empty(m)
    for i in range(0, m, batch):
        d = np.sqrt(np.maximum(sq[i : i + batch, None] - 2 * x[i : i + batch] @ x.T + sq[None], 0))
        d[d <= 1e-6 * (1 + np.sqrt(sq[i : i + batch, None]))] = np.inf  # the token itself and its copies
        near = np.partition(d, kk - 1, axis=1)[:, :kk]
        finite = np.isfinite(near)
        n = finite.sum(1)
        r[i : i + batch] = np.where(n > 0, np.where(finite, near, 0).sum(1) / np.maximum(n, 1), np.nan)
    if np.isnan(r).all():
        return np.ones(m, np.float32)  # one distinct token: no density to compare
    r = np.where(np.isnan(r), np.nanmean(r), r)
    return np.clip(r.mean() / r, *DENSITY_BOUNDS).astype(np.float32)


@dataclass
class NearestNeighbour:
    """A memory of good tokens, coreset-subsampled to `fraction` of them; the map is each
    location's Euclidean distance to its nearest memory token (PatchCore's patch score,
    without its reweighting, which changes the image score only), times that token's
    density weight with density_k > 0 (the default head's map: model.Memory)."""

    fraction: float = 0.1
    seed: int = 0
    density_k: int = 0  # > 0: the map divided by the nearest token's density (density_weights)
    memory: np.ndarray | None = None  # (M, C)
    weights: np.ndarray | None = None  # (M,), with density_k

    def fit(self, feats: np.ndarray) -> "NearestNeighbour":
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction {self.fraction}: must be in (0, 1]")
        tokens = feats.reshape(-1, feats.shape[-1]).astype(np.float32)
        k = max(1, int(round(len(tokens) * self.fraction)))
        self.memory = tokens[coreset(tokens, k, self.seed)] if k < len(tokens) else tokens
        self.weights = density_weights(self.memory, self.density_k) if self.density_k > 0 else None
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
            j = d2.argmin(1)
            out[i : i + batch] = np.sqrt(np.maximum(d2[np.arange(len(b)), j], 0))
            if self.weights is not None:
                out[i : i + batch] *= self.weights[j]
        return out.reshape(feats.shape[:-1])

from __future__ import annotations

import numpy as np
import pytest

from adtr import baselines


def _good(n: int = 40, g: int = 4, c: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # each location its own mean, so a per-location model has something to learn
    return (rng.standard_normal((n, g, g, c)) * 0.5 + np.arange(g * g * c).reshape(g, g, c) % 3).astype(np.float32)


@pytest.mark.parametrize("detector", [baselines.PaDiM(), baselines.NearestNeighbour(0.25)], ids=["padim", "nn"])
def test_a_changed_location_scores_highest(detector) -> None:  # type: ignore[no-untyped-def]
    good = _good()
    test = _good(3, seed=1)
    test[1, 2, 1] += 4.0  # one defective location in the second image
    maps = detector.fit(good).maps(test)
    assert maps.shape == (3, 4, 4)
    assert np.unravel_index(maps.argmax(), maps.shape) == (1, 2, 1)
    assert maps[1, 2, 1] > 2 * np.delete(maps.ravel(), np.ravel_multi_index((1, 2, 1), maps.shape)).max()


def test_padim_is_the_mahalanobis_distance() -> None:
    good = _good()
    p = baselines.PaDiM(eps=0.01).fit(good)
    x = _good(1, seed=2)
    d = (x[0, 1, 3] - good[:, 1, 3].mean(0)).astype(np.float64)
    cov = np.cov(good[:, 1, 3].T.astype(np.float64)) + 0.01 * np.eye(8)
    assert p.maps(x)[0, 1, 3] == pytest.approx(np.sqrt(d @ np.linalg.solve(cov, d)), rel=1e-4)


def test_coreset_covers_the_tokens_better_than_chance() -> None:
    rng = np.random.default_rng(0)
    tokens = np.concatenate([rng.standard_normal((990, 16)), 20 + rng.standard_normal((10, 16))]).astype(np.float32)
    pick = baselines.coreset(tokens, 20)
    assert len(set(pick)) == 20
    assert (pick >= 990).any()  # the far cluster is covered, which 20 random picks miss 82 % of the time

    def radius(idx: np.ndarray) -> float:
        return float(np.sqrt(((tokens[:, None] - tokens[idx][None]) ** 2).sum(-1)).min(1).max())

    assert radius(pick) < radius(rng.choice(1000, 20, replace=False))


def test_nearest_neighbour_distance_to_the_memory() -> None:
    good = _good()
    nn = baselines.NearestNeighbour(1.0).fit(good)  # all tokens kept
    x = _good(1, seed=3)
    want = np.sqrt(((good.reshape(-1, 8) - x[0, 0, 0]) ** 2).sum(1)).min()
    assert nn.maps(x)[0, 0, 0] == pytest.approx(want, rel=1e-4)
    # a memory token is at distance 0, up to float32 cancellation in |a|^2 - 2ab + |b|^2
    assert nn.maps(good[:1]).max() == pytest.approx(0.0, abs=1e-2)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="fraction"):
        baselines.NearestNeighbour(0.0).fit(_good())
    with pytest.raises(ValueError, match="at least 2"):
        baselines.PaDiM().fit(_good(1))

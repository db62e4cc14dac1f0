from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from adtr import scoring


def test_upsample_matches_align_corners_bilinear() -> None:
    rng = np.random.default_rng(0)
    m = rng.random((2, 14, 14)).astype(np.float32)
    ref = tf.compat.v1.image.resize_bilinear(m[..., None], (224, 224), align_corners=True).numpy()[..., 0]
    got = scoring.upsample(m, 224)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # aligned corners: the corner pixels are the corner tokens exactly
    assert got[0, 0, 0] == m[0, 0, 0] and got[1, -1, -1] == m[1, -1, -1]


@pytest.mark.parametrize("kernel", [1, 3, 16])
def test_image_score_is_max_of_unpadded_average_pool(kernel: int) -> None:
    rng = np.random.default_rng(kernel)
    up = rng.random((3, 40, 40))
    pooled = tf.nn.avg_pool2d(up[..., None], kernel, 1, "VALID").numpy()[..., 0]
    np.testing.assert_allclose(scoring.image_scores(up, kernel), pooled.reshape(3, -1).max(1), rtol=1e-9)
    assert scoring.image_scores(up[0], kernel) == pytest.approx(pooled[0].max())


def test_a_single_hot_token_raises_the_score() -> None:
    m = np.ones((14, 14), np.float32)
    base = scoring.image_scores(scoring.upsample(m, 224), 16)
    m[7, 7] = 5.0
    assert scoring.image_scores(scoring.upsample(m, 224), 16) > base + 1.0

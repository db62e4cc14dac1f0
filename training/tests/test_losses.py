"""ADTR+ losses against a direct numpy transcription of shared/ADTR.md."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from adtr import train
from adtr.train import _phi, plus_losses, token_labels


def ref_phi(d: np.ndarray) -> np.ndarray:
    return np.sqrt(np.abs(d).mean(-1) ** 2 + 1) - 1


def test_phi_is_pseudo_huber_of_mean_abs_difference() -> None:
    d = np.random.default_rng(0).normal(size=(2, 5, 8)).astype(np.float32)
    np.testing.assert_allclose(_phi(tf.constant(d)).numpy(), ref_phi(d), rtol=1e-5)


def test_pixel_loss() -> None:
    phi = np.array([[0.1, 0.2, 0.9, 0.5], [0.3, 0.1, 0.2, 0.4]], np.float32)
    lab = np.array([[0, 0, 1, -1], [0, 0, 0, 0]], np.int32)
    alpha = 0.003
    ref0 = (0.1 + 0.2) / 2 - alpha * np.log(1 - np.exp(-0.9))
    ref1 = (0.3 + 0.1 + 0.2 + 0.4) / 4
    got = plus_losses(tf.constant(phi), tf.constant(lab), tf.constant([1, 0]), alpha, 2, pixel=True).numpy()
    assert got == pytest.approx((ref0 + ref1) / 2, rel=1e-5)


def test_image_loss_uses_top_k() -> None:
    phi = np.array([[0.1, 0.2, 0.9, 0.5], [0.3, 0.1, 0.2, 0.4]], np.float32)
    alpha, k = 0.003, 2
    q = np.sort(phi, 1)[:, -k:].mean(1)
    ref = ((q[0]) + (-alpha * np.log(1 - np.exp(-q[1])))) / 2  # image 0 good, image 1 anomalous
    got = plus_losses(tf.constant(phi), tf.constant(np.zeros((2, 4), np.int32)), tf.constant([0, 1]), alpha, k, pixel=False).numpy()
    assert got == pytest.approx(ref, rel=1e-5)


def test_token_labels_from_masks() -> None:
    m = np.zeros((1, 32, 32), np.uint8)
    m[0, :16, :16] = 1  # token (0,0) fully covered
    m[0, 16, 16] = 1  # token (1,1) barely touched: ignored, neither normal nor anomalous
    assert token_labels(m, 2).tolist() == [[1, 0, 0, -1]]


def test_adtr_plus_selection_keeps_the_start_unless_validation_improves() -> None:
    # (image AUROC, pixel AUROC) on validation; index 0 is the starting model.
    assert train._select([(0.90, 0.95), (0.95, 0.94), (0.89, 0.99)]) == 0  # each later epoch lowers one of them
    assert train._select([(0.90, 0.95), (0.95, 0.94), (0.92, 0.96), (0.91, 0.97)]) == 2  # best sum among not-worse
    assert train._select([(0.90, 0.95), (0.90, 0.95)]) == 0  # ties go to the earlier epoch


def test_validation_split_is_disjoint_and_needs_enough_anomalies() -> None:
    tr, va = train.split_validation(32, 0.25, 0)
    assert len(va) == 8 and not set(tr) & set(va) and len(tr) + len(va) == 32
    assert len(train.split_validation(3, 0.25, 0)[1]) == 0  # too few to spare any
    assert len(train.split_validation(10, 0.0, 0)[1]) == 0


def test_weighted_auroc_matches_sklearn_on_repeated_data() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    s = np.round(rng.normal(0, 1, 300), 1)  # rounded: with ties
    y = (rng.random(300) < 0.3).astype(int)
    w = rng.integers(0, 4, 300)
    assert train._WeightedAUROC(s, y)(np.ones(300)) == pytest.approx(roc_auc_score(y, s))
    assert train._WeightedAUROC(s, y)(w.astype(float)) == pytest.approx(roc_auc_score(np.repeat(y, w), np.repeat(s, w)))


def test_bootstrap_support_needs_a_real_gain() -> None:
    from adtr.data import Split

    rng = np.random.default_rng(4)
    n, size = 12, 32
    labels = np.array([0] * 6 + [1] * 6)
    masks = np.zeros((n, size, size), np.uint8)
    masks[6:, 8:16, 8:16] = 1
    maps = rng.random((n, 2, 2)).astype(np.float32)
    val = Split(np.zeros((n, size, size, 3), np.uint8), labels, masks, [], [])
    assert train.bootstrap_support(val, maps, maps, 4, 0) == 0.0  # no gain at all
    better = maps.copy()
    better[6:, 0, 0] += 5.0  # anomalies' maps clearly higher where the defects are
    assert train.bootstrap_support(val, maps, better, 4, 0) >= 0.95


def test_feature_jitter_is_uniads_add_jitter() -> None:
    """UniAD's add_jitter: noise of std scale * ||f|| / C per token, on the input only;
    scale 0 (the default recipe) leaves the features as they are."""
    rng = np.random.default_rng(0)
    f = tf.constant(rng.normal(size=(4, 14, 14, 64)).astype(np.float32))
    noise = tf.random.Generator.from_seed(1)
    assert train.jitter(f, 0.0, noise) is f
    out = train.jitter(f, 20.0, noise).numpy()
    d = out - f.numpy()
    want = np.linalg.norm(f.numpy(), axis=-1) / 64 * 20.0  # per token
    got = d.std(axis=-1)
    assert np.allclose(got / want, 1.0, atol=0.3), (got / want).mean()
    assert abs(float((got / want).mean()) - 1.0) < 0.05

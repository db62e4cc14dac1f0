"""ADTR+ losses against a direct numpy transcription of shared/ADTR.md."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

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

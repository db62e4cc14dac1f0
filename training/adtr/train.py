"""Training: ADTR on good images only (MSE on frozen features) and ADTR+ fine-tuning.

The backbone is frozen, so its features are computed once and cached; only the
reconstructor trains, which is what makes the tiny preset a matter of minutes on 2 cores.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from . import anomalies
from .checkpoint import Checkpoint
from .config import ModelConfig, TrainConfig
from .data import Dataset
from .model import ADTR

log = logging.getLogger("adtr.train")


def _optimizer(tcfg: TrainConfig, steps_per_epoch: int, epochs: int) -> tf.keras.optimizers.Optimizer:
    drop = max(1, min(tcfg.lr_drop_epoch, epochs)) * steps_per_epoch
    schedule = tf.keras.optimizers.schedules.PiecewiseConstantDecay([drop], [tcfg.lr, tcfg.lr * 0.1])
    return tf.keras.optimizers.AdamW(learning_rate=schedule, weight_decay=tcfg.weight_decay)


def split_heldout(paths: list[Path], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and held-out good images (held-out ones set the threshold)."""
    n = len(paths)
    k = 0 if fraction <= 0 else max(2, int(round(n * fraction)))
    if n - k < 2:
        raise ValueError(f"need at least {k + 2} good training images, found {n}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[k:]), np.sort(order[:k])


def train(
    cfg: ModelConfig,
    tcfg: TrainConfig,
    dataset: Dataset,
    *,
    backbone_weights: str | None = None,
    heldout_fraction: float = 0.1,
    epochs: int | None = None,
) -> Checkpoint:
    """Train ADTR on dataset's train/good; returns the checkpoint in memory."""
    epochs = epochs or tcfg.epochs
    paths = dataset.train_paths()
    images = dataset.train(cfg.input_size)
    tr, ho = split_heldout(paths, heldout_fraction, cfg.seed)
    model = ADTR(cfg, backbone_weights)
    t0 = time.monotonic()
    model.fit_feature_norms(images[tr])
    feats = model.features(images[tr])
    log.info("features %s in %.1fs", feats.shape, time.monotonic() - t0)
    rec = model.reconstructor
    steps = int(np.ceil(len(feats) / tcfg.batch))
    opt = _optimizer(tcfg, steps, epochs)

    @tf.function(reduce_retracing=True)
    def step(f: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(rec(f, training=True) - f))
        grads = tape.gradient(loss, rec.trainable_variables)
        opt.apply_gradients(zip(grads, rec.trainable_variables))
        return loss

    rng = np.random.default_rng(cfg.seed)
    losses = []
    for epoch in range(epochs):
        order = rng.permutation(len(feats))
        total = 0.0
        for i in range(steps):
            total += float(step(tf.constant(feats[order[i * tcfg.batch : (i + 1) * tcfg.batch]])))
        losses.append(total / steps)
        if epoch % 10 == 0 or epoch == epochs - 1:
            log.info("epoch %d/%d mse %.5f (%.0fs)", epoch + 1, epochs, losses[-1], time.monotonic() - t0)
    data = dataset.summary(cfg.input_size, n_train=len(tr), n_heldout=len(ho))
    history = [{"stage": "adtr", "epochs": epochs, "final_mse": losses[-1], "seconds": round(time.monotonic() - t0, 1)}]
    return Checkpoint(model, tcfg, data, [str(paths[i]) for i in ho], history, backbone_weights)


def _phi(d: tf.Tensor) -> tf.Tensor:
    """Pseudo-Huber per-location distance: sqrt(mean_i |d_i|^2 + 1) - 1 (ADTR.md)."""
    m = tf.reduce_mean(tf.abs(d), axis=-1)
    return tf.sqrt(tf.square(m) + 1.0) - 1.0


def _neg_log_one_minus_exp(x: tf.Tensor) -> tf.Tensor:
    # -log(1 - exp(-x)), clamped where x -> 0 would make it infinite.
    return -tf.math.log(tf.maximum(1.0 - tf.exp(-x), 1e-6))


def plus_losses(phi: tf.Tensor, token_labels: tf.Tensor, image_labels: tf.Tensor, alpha: float, topk: int, pixel: bool) -> tf.Tensor:
    """ADTR+ loss for a batch. phi: (B, K); token_labels: (B, K) with 1 anomalous, 0 normal,
    -1 ignored; image_labels: (B,). pixel=False uses only image labels."""
    if pixel:
        normal = tf.cast(tf.equal(token_labels, 0), tf.float32)
        anom = tf.cast(tf.equal(token_labels, 1), tf.float32)
        n_norm = tf.reduce_sum(normal, 1)
        n_anom = tf.reduce_sum(anom, 1)
        normal_term = tf.reduce_sum(phi * normal, 1) / tf.maximum(n_norm, 1.0)
        anom_mean = tf.reduce_sum(phi * anom, 1) / tf.maximum(n_anom, 1.0)
        anom_term = tf.where(n_anom > 0, alpha * _neg_log_one_minus_exp(anom_mean), 0.0)
        return tf.reduce_mean(normal_term + anom_term)
    q = tf.reduce_mean(tf.math.top_k(phi, k=min(topk, int(phi.shape[1]))).values, axis=1)
    y = tf.cast(image_labels, tf.float32)
    return tf.reduce_mean((1 - y) * q + alpha * y * _neg_log_one_minus_exp(q))


def token_labels(masks: np.ndarray, grid: int) -> np.ndarray:
    """Pixel masks (N, S, S) -> per-token labels: 1 if >10% covered, 0 if clean, -1 between."""
    n, s = masks.shape[0], masks.shape[1]
    cell = s // grid
    cover = masks[:, : grid * cell, : grid * cell].reshape(n, grid, cell, grid, cell).mean((2, 4)).reshape(n, -1)
    return np.where(cover > 0.1, 1, np.where(cover == 0, 0, -1)).astype(np.int32)


def finetune_plus(
    ck: Checkpoint,
    dataset: Dataset,
    *,
    defects: Dataset | None = None,
    synthetic: int = 0,
    pixel: bool = True,
    epochs: int | None = None,
) -> Checkpoint:
    """ADTR+: fine-tune on good images plus labelled anomalies (real from `defects`, or
    `synthetic` generated ones). The backbone stays frozen."""
    cfg, tcfg, model = ck.cfg, ck.train, ck.model
    epochs = epochs or tcfg.plus_epochs
    held = set(ck.heldout)
    paths = dataset.train_paths()
    keep = [i for i, p in enumerate(paths) if str(p) not in held]
    good = dataset.train(cfg.input_size)[keep]
    if defects is not None:
        split = defects.labelled_defects(cfg.input_size)
        bad, bad_masks = split.images, split.masks
        source: dict[str, Any] = {"defects": str(defects.root), "count": int(len(bad))}
    else:
        bad, bad_masks = anomalies.make(good, synthetic or len(good), cfg.seed + 7)
        source = {"synthetic": int(len(bad))}
    if len(bad) == 0:
        raise ValueError("ADTR+ needs at least one labelled anomaly")
    t0 = time.monotonic()
    f_good = model.features(good)
    f_bad = model.features(bad)
    feats = np.concatenate([f_good, f_bad])
    tok = np.concatenate([np.zeros((len(good), cfg.grid**2), np.int32), token_labels(bad_masks, cfg.grid)])
    img = np.concatenate([np.zeros(len(good), np.int32), np.ones(len(bad), np.int32)])
    rec = model.reconstructor
    # Fine-tuning uses the lower learning rate the paper's schedule ends on.
    ft = TrainConfig(lr=tcfg.lr * 0.1, weight_decay=tcfg.weight_decay, lr_drop_epoch=epochs, batch=tcfg.batch)
    steps = int(np.ceil(len(feats) / tcfg.batch))
    opt = _optimizer(ft, steps, epochs)

    @tf.function(reduce_retracing=True)
    def step(f: tf.Tensor, t: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            r = rec(f, training=True)
            phi = tf.reshape(_phi(f - r), (tf.shape(f)[0], -1))
            loss = plus_losses(phi, t, y, tcfg.plus_alpha, tcfg.plus_topk, pixel)
        grads = tape.gradient(loss, rec.trainable_variables)
        opt.apply_gradients(zip(grads, rec.trainable_variables))
        return loss

    rng = np.random.default_rng(cfg.seed + 1)
    last = 0.0
    for epoch in range(epochs):
        order = rng.permutation(len(feats))
        total = 0.0
        for i in range(steps):
            sel = order[i * tcfg.batch : (i + 1) * tcfg.batch]
            total += float(step(tf.constant(feats[sel]), tf.constant(tok[sel]), tf.constant(img[sel])))
        last = total / steps
        if epoch % 5 == 0 or epoch == epochs - 1:
            log.info("plus epoch %d/%d loss %.5f (%.0fs)", epoch + 1, epochs, last, time.monotonic() - t0)
    entry = {"stage": "adtr+", "labels": "pixel" if pixel else "image", "epochs": epochs, "final_loss": last,
             "anomalies": source, "seconds": round(time.monotonic() - t0, 1)}
    return Checkpoint(model, tcfg, ck.data, ck.heldout, ck.history + [entry], ck.backbone_weights)

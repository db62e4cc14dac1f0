"""The ADTR network (You et al., ICONIP 2022) in Keras, built from a ModelConfig.

Frozen backbone -> features at stride 16 (or 8) -> 1x1 projection -> transformer encoder
and a decoder fed by a learnable query embedding -> back-projection -> anomaly map
s(u) = ||f(:,u) - f^(:,u)||_2; or, instead of the transformer, the nearest-neighbour
head (Memory). Ops are kept to those TFLite 2.9 runs in int8.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from pathlib import Path
from typing import Iterator

import numpy as np
import tensorflow as tf

from .config import ConfigError, ModelConfig

keras = tf.keras
layers = tf.keras.layers

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

# Keras EfficientNet layer names ending stages 1-4 as UniAD takes them (timm's
# features at strides 2, 4, 8, 16: 24+32+56+160 = 272 channels for B4).
_EFFICIENTNET_STAGES = {
    "efficientnet-b0": ("block1a_project_bn", "block2b_add", "block3b_add", "block5c_add"),
    "efficientnet-b4": ("block1b_add", "block2d_add", "block3d_add", "block5f_add"),
}
# The same choice for EfficientNet-Lite0 (B0's block layout): the last block at strides
# 2, 4, 8 and 16, 16+24+40+112 = 192 channels (lite0.build's output names).
LITE0_STAGES = ("block1a", "block2b", "block3b", "block5c")


def _channel_affine(x: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor) -> tf.Tensor:
    """x * scale + offset per channel of an NHWC tensor, as a 1x1 convolution with a
    diagonal kernel and a bias.

    TFLite lowers it to one CONV_2D whose per-channel int8 weights hold each scale
    exactly (one nonzero per output channel), and whose kernel rounds identically in
    2.9 and 2.15; the int8 MUL, ADD and SUB it replaces do not (see _signed_sum).
    """
    return tf.nn.conv2d(x, tf.linalg.diag(scale)[None, None], 1, "VALID") + offset


class Normalise(layers.Layer):
    """(x - mean) / std per channel of 0..255 RGB, folded into the graph.

    The default is torchvision's ImageNet mean/std in 0..255 units; EfficientNet-Lite's
    weights expect (x - 127) / 128 (lite0.MEAN, lite0.STD).
    """

    def __init__(self, mean: np.ndarray | float = 255.0 * IMAGENET_MEAN, std: np.ndarray | float = 255.0 * IMAGENET_STD,
                 **kw: object) -> None:
        super().__init__(**kw)
        self.mean = np.broadcast_to(np.asarray(mean, np.float32), (3,)).copy()
        self.std = np.broadcast_to(np.asarray(std, np.float32), (3,)).copy()

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return _channel_affine(x, tf.constant(1.0 / self.std), tf.constant(-self.mean / self.std))


class StagePool(layers.Layer):
    """k x k average pooling with stride k (no padding): a stage's features at the model's stride.

    Under int8_lowering it is a depthwise convolution with every weight 1/k^2 (2^-6 for
    k = 8: exact in int8), the same function. TFLite's int8 AVERAGE_POOL_2D must keep its
    input's scale, the coarse one of a projection's full range (0.5 on Lite0's stage 1,
    whose pooled channels have a std of 0.35-1.7); the convolution's output gets a scale
    calibrated on the pooled values, 4x finer. Measured on real textures (README,
    "Backbones on real surfaces", (c)): a small gain beside exact.py's bias correction,
    which took out the features' main int8 error, a per-channel offset.
    """

    def __init__(self, k: int, **kw: object) -> None:
        super().__init__(**kw)
        self.k = k

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "k": self.k}

    def call(self, x: tf.Tensor) -> tf.Tensor:
        k = self.k
        if not _INT8_LOWERING.get():
            return tf.nn.avg_pool2d(x, k, k, "VALID")
        kernel = tf.constant(np.full((k, k, int(x.shape[-1]), 1), 1.0 / (k * k), np.float32))
        return tf.nn.depthwise_conv2d(x, kernel, (1, k, k, 1), "VALID")


class FeatureNorm(layers.Layer):
    """Per-channel standardisation with statistics fitted once on good images.

    Random features have channels of very different scale; without this the MSE is
    dominated by a few of them. The statistics are weights, so they travel with the
    checkpoint and fold into the exported graph.
    """

    def build(self, input_shape: tf.TensorShape) -> None:
        c = int(input_shape[-1])
        self.mean = self.add_weight(name="mean", shape=(c,), initializer="zeros", trainable=False)
        self.inv_std = self.add_weight(name="inv_std", shape=(c,), initializer="ones", trainable=False)

    def __init__(self, clip: float, **kw: object) -> None:
        super().__init__(**kw)
        self.clip = clip

    def call(self, x: tf.Tensor) -> tf.Tensor:
        # Clipping: random ReLU channels that rarely fire have heavy tails, which would
        # dominate both the MSE and the int8 ranges; anomalies still stand out at the clip.
        # The top is one int8 step short of the clip: [-c, c - c/128] is exactly 255
        # steps of c/128, a power of two for c = 4, so the exported graph's features
        # keep that step; [-c, c] needs 2c/255, which exact.py rounds up to 2c/128.
        lo, hi = -self.clip, self.clip * (1.0 - 1.0 / 128.0)
        return tf.clip_by_value(_channel_affine(x, self.inv_std, -self.mean * self.inv_std), lo, hi)

    def fit(self, features: np.ndarray) -> None:
        flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
        std = flat.std(0)
        # Floor at a quarter of the median: a near-constant channel carries no signal,
        # and dividing by its tiny std would amplify noise (and int8 rounding) into it.
        floor = max(0.25 * float(np.median(std)), 1e-6)
        self.mean.assign(flat.mean(0).astype(np.float32))
        self.inv_std.assign((1.0 / np.maximum(std, floor)).astype(np.float32))


def _random_cnn(cfg: ModelConfig, x: tf.Tensor) -> list[tf.Tensor]:
    """Four stages of two seeded, frozen 3x3 convs each: strides 2, 4, 8, 16.

    Random features stand in for ImageNet ones where none can be had (see README).
    """
    outs = []
    init_seed = cfg.seed * 1000
    for i, c in enumerate(cfg.cnn_channels):
        for j, stride in enumerate((2, 1)):
            init_seed += 1
            x = layers.Conv2D(
                c, 3, strides=stride, padding="same", use_bias=False,
                kernel_initializer=keras.initializers.HeNormal(seed=init_seed),
                name=f"cnn{i + 1}_{j + 1}",
            )(x)
            x = layers.ReLU(name=f"cnn{i + 1}_{j + 1}_relu")(x)
        outs.append(x)
    return outs


def build_backbone(cfg: ModelConfig, weights: str | Path | None = None) -> keras.Model:
    """Image (float RGB in [0, 255]) -> the chosen stages' features at cfg.stride, concatenated, frozen."""
    size = cfg.input_size
    inp = keras.Input((size, size, 3), name="image")
    if cfg.backbone == "random-cnn":
        if weights is not None:
            raise ConfigError("backbone random-cnn takes no weights file")
        x = Normalise(name="normalise")(inp)
        stages = _random_cnn(cfg, x)
    elif cfg.backbone == "efficientnet-lite0":
        from . import lite0

        state = lite0.read_state_dict(weights if weights is not None else lite0.default_weights())
        x = Normalise(lite0.MEAN, lite0.STD, name="normalise")(inp)
        # Residual sums lowered like the transformer's (see _signed_sum): int8 ADD rounds
        # differently in TFLite 2.9 and 2.15.
        # Only the blocks the last chosen stage needs: leaving stage 4 out drops blocks 4-5.
        last = LITE0_STAGES[max(cfg.stages) - 1][: len("blockN")]
        outs = lite0.build(x, state, add=lambda a, b: Residual()([a, b]), upto=last)
        stages = [outs.get(n) for n in LITE0_STAGES]  # None past `last`: not chosen
    else:
        if weights is not None and not Path(weights).is_file():
            raise ConfigError(f"{weights}: backbone weights file not found")
        ctor = {"efficientnet-b0": keras.applications.EfficientNetB0, "efficientnet-b4": keras.applications.EfficientNetB4}[cfg.backbone]
        # Keras EfficientNet normalises 0..255 input itself, so the graph takes raw RGB.
        try:
            net = ctor(include_top=False, weights=str(weights) if weights else None, input_tensor=inp)
        except (ValueError, OSError) as e:
            raise ConfigError(f"{weights}: cannot load {cfg.backbone} weights: {str(e).splitlines()[0]}") from None
        stages = [net.get_layer(n).output for n in _EFFICIENTNET_STAGES[cfg.backbone]]
    g = cfg.grid
    resized = []
    for i, t in enumerate(stages):
        if i + 1 not in cfg.stages:
            continue
        h = int(t.shape[1])
        if h > g:
            # UniAD resizes bilinearly; average pooling is the anti-aliased form of the
            # same downsampling and stays exact in int8.
            t = StagePool(h // g, name=f"stage{i + 1}_pool")(t)
        elif h < g:
            t = layers.UpSampling2D(g // h, interpolation="bilinear", name=f"stage{i + 1}_up")(t)
        if cfg.feature_norm:
            # Per stage, before the concatenation: stages differ in scale by 10x or more,
            # and one int8 scale for all of them would round the small ones away.
            t = FeatureNorm(cfg.feature_clip, name=f"stage{i + 1}_norm")(t)
        resized.append(t)
    f = layers.Concatenate(name="features")(resized)
    model = keras.Model(inp, f, name="backbone")
    model.trainable = False
    return model


def _channel_mean(x: tf.Tensor) -> tf.Tensor:
    """Mean over the last axis as a matmul with a constant 1/D column.

    TFLite lowers it to FULLY_CONNECTED, whose int8 kernel rounds identically in 2.9
    and later releases; its MEAN kernel does not (one step apart, then amplified).
    """
    d = int(x.shape[-1])
    return tf.matmul(x, tf.constant(np.full((d, 1), 1.0 / d, np.float32)))


_INT8_LOWERING = contextvars.ContextVar("adtr_int8_lowering", default=False)


@contextlib.contextmanager
def int8_lowering() -> Iterator[None]:
    """Within this context sums and copies are built in the int8-safe form below.

    Outside it (training, the float ONNX graph) they are plain adds: the same function,
    exactly, without the +-I weights that would make training slower and the float
    graph larger. The TFLite converter traces the model again, so conversion must run
    inside the context too (export.convert_int8 does).
    """
    token = _INT8_LOWERING.set(True)
    try:
        yield
    finally:
        _INT8_LOWERING.reset(token)


def _signed_sum(terms: list[tf.Tensor], signs: list[float]) -> tf.Tensor:
    """sum_i signs[i] * terms[i]; under int8_lowering, one matmul over their concatenation.

    The weight stacks +-I (a one-channel term is broadcast with a row of +-1s), so it
    is exact in float and in int8 (every weight is +-1, quantised to +-127 on one
    scale). TFLite lowers it to CONCATENATION and FULLY_CONNECTED, whose int8 kernels
    round identically in 2.9 and 2.15; its int8 ADD and SUB kernels do not (measured:
    one element of a residual ADD rounded one step apart on some trained graphs, and
    the layers after it spread that to several steps of the map).
    """
    if not _INT8_LOWERING.get():
        out = terms[0] * signs[0] if signs[0] != 1.0 else terms[0]
        for t, sign in zip(terms[1:], signs[1:]):
            out = out + t if sign == 1.0 else out - t if sign == -1.0 else out + sign * t
        return out
    d = max(int(t.shape[-1]) for t in terms)
    blocks = []
    for t, sign in zip(terms, signs):
        c = int(t.shape[-1])
        if c not in (1, d):
            raise ValueError(f"cannot sum {c} channels with {d}")
        blocks.append(sign * (np.eye(d) if c == d else np.ones((1, d))))
    w = tf.constant(np.concatenate(blocks).astype(np.float32))
    x = tf.concat(terms, axis=-1)
    if x.shape.rank == 4:
        # NHWC (the backbone's residuals): a 1x1 CONV_2D, the same sum per pixel.
        return tf.nn.conv2d(x, w[None, None], 1, "VALID")
    return tf.matmul(x, w)


def _add(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """a + b (same shape), lowered so that TFLite 2.9 and 2.15 agree: see _signed_sum."""
    return _signed_sum([a, b], [1.0, 1.0])


class Residual(layers.Layer):
    """[a, b] -> a + b as a layer, for functional models (the backbone's residuals).

    A bare _add in a functional model is traced once, when the model is built; as a
    layer it is traced again under int8_lowering, as the converter needs.
    """

    def call(self, ab: list[tf.Tensor]) -> tf.Tensor:
        return _add(ab[0], ab[1])


def _own_scale(x: tf.Tensor) -> tf.Tensor:
    """x, through a matmul with the identity (exact in float; weights exact in int8).

    A CONCATENATION's int8 inputs and output must share one scale, so a tensor that
    enters two of them (x + pos for attention and x + sublayer(x) for the residual)
    gets an int8->int8 QUANTIZE in front of one. TFLite 2.9 rounds that requantisation
    differently from 2.15 (measured: one step off on a third of random scale pairs,
    wherever the value is negative and the scale shrinks). This FULLY_CONNECTED gives
    the second use its own tensor and scale instead.
    """
    if not _INT8_LOWERING.get():
        return x
    return tf.matmul(x, tf.constant(np.eye(int(x.shape[-1]), dtype=np.float32)))


def _matmul(a: tf.Tensor, b: tf.Tensor, transpose_b: bool = False) -> tf.Tensor:
    """a @ b; under int8_lowering over a doubled inner axis, so the result is 2 * (a @ b).

    BATCH_MATMUL (both operands activations) is the one requantising int8 kernel that
    XNNPACK does not take in TFLite 2.9, and TFLite's own kernel rounds its int32
    accumulator to int8 twice on amd64 and once on arm64. With every accumulator even
    (each product appears twice) and a power-of-two multiplier (export sets the scales:
    see exact.make_exact), both roundings give the same int8, so the graph
    runs bit-identically on amd64, arm64 and the Python interpreter. Callers fold the
    factor 1/2 into a weight upstream, which is free.
    """
    if not _INT8_LOWERING.get():
        return tf.matmul(a, b, transpose_b=transpose_b)
    a2 = tf.concat([a, a], axis=-1)
    b2 = tf.concat([b, b], axis=-1 if transpose_b else -2)
    return tf.matmul(a2, b2, transpose_b=transpose_b)


def _matmul_fold() -> float:
    """The factor a caller of _matmul folds upstream so the result is a @ b."""
    return 0.5 if _INT8_LOWERING.get() else 1.0


def _l2_normalize(x: tf.Tensor) -> tf.Tensor:
    """x / ||x|| over the last axis, shaped so the converter emits L2_NORMALIZATION.

    The reshape keeps the converter from fusing a preceding Sub and the Square into
    SQUARED_DIFFERENCE, which would hide the pattern. L2_NORMALIZATION squares and
    sums in int32 inside its kernel, where int8 RSQRT/SQRT would lose the small values.
    """
    shape = tf.shape(x)
    flat = tf.reshape(x, (-1, int(x.shape[-1])))
    return tf.reshape(tf.math.l2_normalize(flat, axis=-1), shape)


class TokenDense(layers.Dense):
    """Dense on (B, K, C) tokens as a plain matmul plus bias, which the converter fuses
    into one FULLY_CONNECTED (keras' tensordot form leaves an int8 ADD for the bias)."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.matmul(x, self.kernel) + self.bias


class LayerNorm(layers.Layer):
    """LayerNormalization written as sqrt(D) * l2_normalize(x - mean(x)) * gamma + beta.

    The same function as keras' LayerNormalization (up to where epsilon enters), but
    built from ops whose int8 kernels agree between TFLite 2.9 and the converter's own
    interpreter; keras' version lowers to MEAN and RSQRT, which do not.
    """

    def build(self, input_shape: tf.TensorShape) -> None:
        d = int(input_shape[-1])
        self.gamma = self.add_weight(name="gamma", shape=(d,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(d,), initializer="zeros")
        self.root_d = math.sqrt(d)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        n = _l2_normalize(_signed_sum([x, _channel_mean(x)], [1.0, -1.0]))
        # The per-channel affine as a matmul with a diagonal weight plus a bias: one
        # FULLY_CONNECTED instead of int8 MUL and ADD.
        return tf.matmul(n, tf.linalg.diag(self.gamma * self.root_d)) + self.beta


def neighbour_windows(grid: int, size: int) -> np.ndarray:
    """(grid^2, size^2) int32: for each token of a grid x grid map (row-major), the tokens
    of the size x size window around it, the window moved inwards at the borders so
    that every token attends to size^2 others (UniAD's 7x7 neighbour mask clips the
    window there instead, so its border tokens see fewer)."""
    if not 0 < size <= grid or size % 2 == 0:
        raise ConfigError(f"neighbour window {size}: an odd size up to the grid's {grid}")
    starts = np.clip(np.arange(grid) - size // 2, 0, grid - size)
    span = np.arange(size)
    rows = starts[:, None] + span[None]  # (grid, size)
    idx = (rows[:, None, :, None] * grid + rows[None, :, None, :])  # (r, c, wr, wc)
    return idx.reshape(grid * grid, size * size).astype(np.int32)


class Attention(layers.Layer):
    """Multi-head attention from Dense and matmul only (no einsum), so it lowers to
    FULLY_CONNECTED / BATCH_MATMUL / SOFTMAX, which TFLite 2.9 runs in int8.

    With `window` ((n, w) token indices, neighbour_windows) each query attends to its
    w neighbours only: the keys and values are gathered per query (GATHER copies int8
    bytes, so it rounds nothing), which is UniAD's neighbour mask without a mask
    tensor, and w/n of the full attention's work.
    """

    def __init__(self, dim: int, heads: int, dropout: float, window: np.ndarray | None = None, **kw: object) -> None:
        super().__init__(**kw)
        self.dim, self.heads = dim, heads
        self.window = window
        self.q = layers.Dense(dim, name="q")
        self.k = layers.Dense(dim, name="k")
        self.v = layers.Dense(dim, name="v")
        self.o = layers.Dense(dim, name="o")
        self.drop = layers.Dropout(dropout)

    def _split(self, x: tf.Tensor) -> tf.Tensor:
        n = x.shape[1]
        x = tf.reshape(x, (-1, n, self.heads, self.dim // self.heads))
        return tf.transpose(x, (0, 2, 1, 3))

    def call(self, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        n = q.shape[1]
        # Scaled before the split so that the converter folds the scales (attention's
        # 1/sqrt(d) and _matmul's 1/2) into q's and v's weights.
        qh = self._split(self.q(q) * (_matmul_fold() / math.sqrt(self.dim // self.heads)))
        kh = self._split(self.k(k))
        vv = self.v(v)
        vh = self._split(vv * _matmul_fold() if _INT8_LOWERING.get() else vv)
        if self.window is None:
            att = tf.nn.softmax(_matmul(qh, kh, transpose_b=True), axis=-1)
            att = self.drop(att, training=training)
            out = _matmul(att, vh)
        else:
            dh, w = self.dim // self.heads, int(self.window.shape[1])
            idx = tf.constant(self.window)
            # (B*heads, n, dh) -> (B*heads, n, w, dh): each query's own keys and values.
            kn = tf.gather(tf.reshape(kh, (-1, n, dh)), idx, axis=1)
            vn = tf.gather(tf.reshape(vh, (-1, n, dh)), idx, axis=1)
            att = tf.nn.softmax(_matmul(tf.reshape(qh, (-1, n, 1, dh)), kn, transpose_b=True), axis=-1)
            att = self.drop(att, training=training)
            out = tf.reshape(_matmul(att, vn), (-1, self.heads, n, dh))
        out = tf.transpose(out, (0, 2, 1, 3))
        return self.o(tf.reshape(out, (-1, n, self.dim)))


class _FFN(layers.Layer):
    def __init__(self, dim: int, ffn: int, dropout: float, **kw: object) -> None:
        super().__init__(**kw)
        self.a = layers.Dense(ffn, activation="relu", name="ffn1")
        self.b = layers.Dense(dim, name="ffn2")
        self.drop = layers.Dropout(dropout)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return self.b(self.drop(self.a(x), training=training))


class EncoderLayer(layers.Layer):
    """DETR/UniAD post-norm encoder layer; the positional embedding is added to q and k."""

    def __init__(self, cfg: ModelConfig, **kw: object) -> None:
        super().__init__(**kw)
        self.attn = Attention(cfg.hidden, cfg.heads, cfg.dropout, _windows(cfg), name="self_attn")
        self.ffn = _FFN(cfg.hidden, cfg.ffn, cfg.dropout, name="ffn")
        self.n1 = LayerNorm(name="norm1")
        self.n2 = LayerNorm(name="norm2")
        self.d1 = layers.Dropout(cfg.dropout)
        self.d2 = layers.Dropout(cfg.dropout)

    def call(self, x: tf.Tensor, pos: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        qk = _add(_own_scale(x), pos)
        x = self.n1(_add(x, self.d1(self.attn(qk, qk, x, training=training), training=training)))
        return self.n2(_add(x, self.d2(self.ffn(x, training=training), training=training)))


def _windows(cfg: ModelConfig) -> np.ndarray | None:
    return neighbour_windows(cfg.grid, cfg.neighbor_mask) if cfg.neighbor_mask else None


class DecoderLayer(layers.Layer):
    """DETR/UniAD post-norm decoder layer: self-attention, cross-attention to the encoder's memory, FFN."""

    def __init__(self, cfg: ModelConfig, **kw: object) -> None:
        super().__init__(**kw)
        self.self_attn = Attention(cfg.hidden, cfg.heads, cfg.dropout, _windows(cfg), name="self_attn")
        self.cross_attn = Attention(cfg.hidden, cfg.heads, cfg.dropout, _windows(cfg), name="cross_attn")
        self.ffn = _FFN(cfg.hidden, cfg.ffn, cfg.dropout, name="ffn")
        self.n1 = LayerNorm(name="norm1")
        self.n2 = LayerNorm(name="norm2")
        self.n3 = LayerNorm(name="norm3")
        self.drops = [layers.Dropout(cfg.dropout) for _ in range(3)]

    def call(self, tgt: tf.Tensor, memory: tf.Tensor, pos: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        q = _add(_own_scale(tgt), pos)
        t = self.self_attn(q, q, tgt, training=training)
        tgt = self.n1(_add(tgt, self.drops[0](t, training=training)))
        t = self.cross_attn(_add(_own_scale(tgt), pos), _add(_own_scale(memory), pos), memory, training=training)
        tgt = self.n2(_add(tgt, self.drops[1](t, training=training)))
        return self.n3(_add(tgt, self.drops[2](self.ffn(tgt, training=training), training=training)))


class LayerwiseDecoderLayer(DecoderLayer):
    """UniAD's decoder layer (layer-wise query): its own learned query table attends to
    the encoder's memory, then to the previous layer's output `out`, then the FFN; all
    post-norm. The first layer's `out` is the memory."""

    def __init__(self, cfg: ModelConfig, seed: int, **kw: object) -> None:
        super().__init__(cfg, **kw)
        self.query = Embedding(cfg.grid**2, cfg.hidden, seed, cfg.embed_init, name="query_embed")

    def call(self, out: tf.Tensor, memory: tf.Tensor, pos: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        tgt = self.query(memory)
        t = self.self_attn(_add(_own_scale(tgt), pos), _add(_own_scale(memory), pos), memory, training=training)
        tgt = self.n1(_add(tgt, self.drops[0](t, training=training)))
        t = self.cross_attn(_add(_own_scale(tgt), pos), _add(_own_scale(out), pos), out, training=training)
        tgt = self.n2(_add(tgt, self.drops[1](t, training=training)))
        return self.n3(_add(tgt, self.drops[2](self.ffn(tgt, training=training), training=training)))


class Embedding(layers.Layer):
    """A learned (K, D) table broadcast over the batch: positions, or the decoder's queries."""

    def __init__(self, k: int, d: int, seed: int, init: str = "uniform", **kw: object) -> None:
        super().__init__(**kw)
        self.k, self.d, self.seed, self.init = k, d, seed, init

    def build(self, input_shape: tf.TensorShape) -> None:
        # ModelConfig.embed_init: UniAD's uniform [0, 1) or DETR's N(0, 1).
        if self.init == "normal":
            init = keras.initializers.RandomNormal(0.0, 1.0, seed=self.seed)
        else:
            init = keras.initializers.RandomUniform(0.0, 1.0, seed=self.seed)
        self.table = self.add_weight(name="table", shape=(1, self.k, self.d), initializer=init)

    def call(self, like: tf.Tensor) -> tf.Tensor:
        return tf.broadcast_to(self.table, tf.shape(like))


def _conv_budget(cfg: ModelConfig, channels: int) -> int:
    """Number of 3x3 conv layers whose parameters match the transformer's (ablation)."""
    if cfg.conv_layers:
        return cfg.conv_layers
    d, f = cfg.hidden, cfg.ffn
    enc = 4 * d * d + 2 * d * f
    dec = 8 * d * d + 2 * d * f
    total = cfg.enc_layers * enc + cfg.dec_layers * dec + 2 * cfg.grid**2 * d
    return max(1, round(total / (9 * d * d)))


class Memory(layers.Layer):
    """The nearest-neighbour head: each token f is reconstructed as its nearest memory
    token m* = argmin_m ||f - m||^2 = argmin_m (||m||^2 - 2 f.m), so the anomaly map
    ||f - f^|| is the token's distance to the memory of good tokens (PatchCore, Roth et
    al., CVPR 2022, without its image-score reweighting).

    It lowers to a 1x1 CONV_2D (weights -2M, bias ||m||^2), ARG_MIN and GATHER: the
    argmin only chooses, on int8 scores, and the distance itself is then computed from
    f and the gathered m* by AnomalyMap, as for ADTR, so int8 keeps its precision where
    ||f||^2 and ||m||^2 would cancel. Filled by fit (baselines.coreset), not by
    gradient descent.

    With density_k > 0 the layer returns [m*, w*]: w* (B, g, g, 1) is the chosen memory
    token's density weight (baselines.density_weights), a GATHER from a second table, and
    AnomalyMap multiplies the distance by it.
    """

    def __init__(self, size: int, density_k: int = 0, **kw: object) -> None:
        super().__init__(**kw)
        self.size = size
        self.density_k = density_k

    def build(self, input_shape: tf.TensorShape) -> None:
        c = int(input_shape[-1])
        self.memory = self.add_weight(name="memory", shape=(self.size, c), initializer="zeros", trainable=False)
        if self.density_k:
            self.density = self.add_weight(name="density", shape=(self.size, 1), initializer="ones", trainable=False)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        c = int(x.shape[-1])
        m = self.memory
        # A 1x1 convolution over the grid rather than a matmul over the tokens flattened
        # to (B*g*g, C): LiteRT's GPU accelerator cannot place a FULLY_CONNECTED whose
        # batch is the grid ("Unable to parse bc coord for BATCH axis", and the whole
        # graph fell back to the CPU), while CONV_2D runs there.
        kernel = tf.reshape(-2.0 * tf.transpose(m), (1, 1, c, self.size))
        scores = tf.nn.conv2d(x, kernel, 1, "VALID") + tf.reduce_sum(tf.square(m), axis=-1)
        nearest = tf.argmin(scores, axis=-1, output_type=tf.int32)
        if not self.density_k:
            return tf.gather(m, nearest)
        return [tf.gather(m, nearest), tf.gather(self.density, nearest)]

    def fit(self, features: np.ndarray, seed: int) -> None:
        """Keeps `size` tokens of features (N, g, g, C) by greedy k-centre coreset; with
        fewer tokens than that, all of them, repeated to fill the table."""
        from .baselines import coreset, density_weights

        tokens = features.reshape(-1, features.shape[-1]).astype(np.float32)
        if len(tokens) == 0:
            raise ValueError("memory: no good tokens to keep")
        idx = coreset(tokens, self.size, seed) if len(tokens) > self.size else np.resize(np.arange(len(tokens)), self.size)
        kept = tokens[idx]
        self.memory.assign(kept)
        if self.density_k:
            self.density.assign(density_weights(kept, self.density_k)[:, None])


def build_reconstructor(cfg: ModelConfig, channels: int) -> keras.Model:
    """Features (B, g, g, C) -> reconstructed features f^ of the same shape."""
    g = cfg.grid
    inp = keras.Input((g, g, channels), name="features")
    if cfg.reconstructor == "memory":
        return keras.Model(inp, Memory(cfg.memory_size, cfg.memory_density_k, name="memory")(inp), name="memory_reconstructor")
    if cfg.reconstructor == "conv":
        x = layers.Conv2D(cfg.hidden, 1, name="input_proj")(inp)
        for i in range(_conv_budget(cfg, channels)):
            x = layers.Conv2D(cfg.hidden, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        out = layers.Conv2D(channels, 1, name="output_proj")(x)
        return keras.Model(inp, out, name="conv_reconstructor")
    k = g * g
    tokens = layers.Reshape((k, channels), name="tokens")(inp)
    x = TokenDense(cfg.hidden, name="input_proj")(tokens)
    pos = Embedding(k, cfg.hidden, cfg.seed * 1000 + 101, cfg.embed_init, name="pos_embed")(x)
    memory = x
    for i in range(cfg.enc_layers):
        memory = EncoderLayer(cfg, name=f"enc{i + 1}")(memory, pos)
    if cfg.layerwise_query:
        tgt = memory
        for i in range(cfg.dec_layers):
            tgt = LayerwiseDecoderLayer(cfg, cfg.seed * 1000 + 110 + i, name=f"dec{i + 1}")(tgt, memory, pos)
    else:
        if cfg.query_embedding:
            tgt = Embedding(k, cfg.hidden, cfg.seed * 1000 + 102, cfg.embed_init, name="query_embed")(x)
        else:
            tgt = memory
        for i in range(cfg.dec_layers):
            tgt = DecoderLayer(cfg, name=f"dec{i + 1}")(tgt, memory, pos)
    out = layers.Dense(channels, name="output_proj")(tgt)
    out = layers.Reshape((g, g, channels), name="reconstruction")(out)
    return keras.Model(inp, out, name="adtr_reconstructor")


class ADTR:
    """A backbone and a reconstructor that together map images to anomaly maps."""

    def __init__(self, cfg: ModelConfig, backbone_weights: str | Path | None = None) -> None:
        self.cfg = cfg.validate()
        # The seed fixes the data split, the initial weights and the batch order. It does
        # not make training bit-reproducible on this CPU build: measured, two runs from
        # one seed differ within a few epochs even with op determinism, one thread,
        # PYTHONHASHSEED=0 and oneDNN off (see README).
        tf.keras.utils.set_random_seed(cfg.seed)
        self.backbone = build_backbone(cfg, backbone_weights)
        self.channels = int(self.backbone.output.shape[-1])
        self.reconstructor = build_reconstructor(cfg, self.channels)

    def feature_norms(self) -> list[FeatureNorm]:
        return [layer for layer in self.backbone.layers if isinstance(layer, FeatureNorm)]

    def fit_feature_norms(self, images: np.ndarray, batch: int = 32) -> None:
        """Fit every FeatureNorm on the features that reach it from these images."""
        norms = self.feature_norms()
        if not norms:
            return
        net = keras.Model(self.backbone.input, [n.input for n in norms])
        outs: list[list[np.ndarray]] = [[] for _ in norms]
        for i in range(0, len(images), batch):
            res = net(images[i : i + batch].astype(np.float32), training=False)
            for acc, r in zip(outs, res if isinstance(res, (list, tuple)) else [res]):
                acc.append(r.numpy())
        for n, acc in zip(norms, outs):
            n.fit(np.concatenate(acc))

    def features(self, images: np.ndarray, batch: int = 32) -> np.ndarray:
        """uint8 or float images (N, S, S, 3) -> features (N, g, g, C) float32."""
        out = [self.backbone(images[i : i + batch].astype(np.float32), training=False).numpy() for i in range(0, len(images), batch)]
        return np.concatenate(out) if out else np.zeros((0, self.cfg.grid, self.cfg.grid, self.channels), np.float32)

    def maps_from_features(self, feats: np.ndarray, batch: int = 32) -> np.ndarray:
        out = []
        for i in range(0, len(feats), batch):
            f = feats[i : i + batch]
            r = self.reconstructor(f, training=False)
            # the memory head with density weights gives [m*, w]; every other head f^ alone
            rec, w = (r[0].numpy(), r[1].numpy()[..., 0]) if isinstance(r, (list, tuple)) else (r.numpy(), 1.0)
            out.append(np.sqrt(((f - rec) ** 2).sum(-1)) * w)
        return np.concatenate(out) if out else np.zeros((0, self.cfg.grid, self.cfg.grid), np.float32)

    def maps(self, images: np.ndarray) -> np.ndarray:
        """Images -> low-resolution anomaly maps (N, g, g)."""
        return self.maps_from_features(self.features(images))

    def export_model(self) -> keras.Model:
        """uint8-range RGB image -> anomaly map (1, g, g): the graph the daemon runs."""
        size = self.cfg.input_size
        inp = keras.Input((size, size, 3), batch_size=1, name="image")
        f = self.backbone(inp, training=False)
        r = self.reconstructor(f, training=False)
        s = AnomalyMap(name="anomaly_map")([f, *r] if isinstance(r, (list, tuple)) else [f, r])
        return keras.Model(inp, s, name="adtr")


class AnomalyMap(layers.Layer):
    """s(u) = ||f(:, u) - f^(:, u)||_2 over channels (eq. 3), from [f, f^]; from
    [f, f^, w] (the memory head's density weight, (B, g, g, 1)), w(u) s(u)."""

    def call(self, fr: list[tf.Tensor]) -> tf.Tensor:
        weighted = len(fr) == 3
        # d = f - f^ as a lowered sum (see _signed_sum), with _matmul's 1/2 folded in
        # (twice with a weight: its product is a second _matmul).
        h = _matmul_fold() ** (2 if weighted else 1)
        d = _signed_sum(list(fr[:2]), [h, -h])
        # ||d|| = d . (d / ||d||): TFLite has no int8 SQRT, int8 RSQRT differs between
        # releases, and squaring in int8 loses every small difference.
        # The dot product per location is a BATCH_MATMUL of (1, C) by (C, 1): int8 MUL
        # rounds differently between 2.9 and 2.15 (see _signed_sum).
        c, g1, g2 = int(d.shape[-1]), int(d.shape[1]), int(d.shape[2])
        n = _l2_normalize(d)
        s = _matmul(tf.reshape(d, (-1, 1, c)), tf.reshape(n, (-1, c, 1)))
        if weighted:
            # w s as a BATCH_MATMUL of (1, 1) by (1, 1): int8 MUL is not exact (above).
            s = _matmul(s, tf.reshape(fr[2], (-1, 1, 1)))
        return tf.reshape(s, (-1, g1, g2))

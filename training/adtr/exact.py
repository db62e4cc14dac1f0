"""Makes a converted int8 TFLite graph round the same on every CPU kernel it may meet.

The daemon's TFLite 2.9 libraries requantise int8 accumulators four ways: TFLite's own
kernels on amd64 round twice (a rounding doubling high multiply, then a rounding shift),
on arm64 once; XNNPACK's per-tensor kernels on x86 round a float32 product half to
even, on arm64 an integer product half up; XNNPACK's per-channel kernels round a
float32 product half to even on both. Each way agrees with the others on every input if

- every multiplier (input scale x weight scale / output scale) is a power of two, 2^-k,
  so the float and integer forms of it are exact: all scales become powers of two;
- a per-tensor FULLY_CONNECTED or CONV_2D never lands exactly on a half (k >= 2: the
  accumulator is odd, from even weights and an odd bias); a per-channel CONV_2D or
  DEPTHWISE_CONV_2D needs nothing more, since it meets the per-channel kernels only
  (so its weights keep all 8 bits); and for the double rounding of BATCH_MATMUL, every
  accumulator is even (model._matmul sums each product twice).

The price is precision: activation scales grow by less than 2x (under one bit),
per-channel weights keep 7-8 of their 8 bits, per-tensor weights 6-7. Rounding the
weights again shifts each output channel's mean (by sum_j dw_j E[x_j], a step or more
where the input's mean is far from zero: an image's colour); given calibration images,
each bias takes that shift back (bias correction, Nagel et al., "Data-Free
Quantization Through Weight Equalization and Bias Correction", ICCV 2019, sec. 4.2,
here with E[x] measured on the calibration images). Measured in the README ("One
rounding on every CPU").
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

# Written into the graph's metadata ("quantisation.rounding"); the daemon reads it.
ROUNDING = "exact"
ROUNDING_RULE = ("power-of-two scales; per-tensor weights even with odd biases; doubled BATCH_MATMUL "
                 "inner axes: the same int8 on TFLite 2.9 amd64 and arm64 with XNNPACK and on TF 2.15")

INT8, INT32 = 9, 2
# Int8 kernels that move or compare bytes without requantising: their inputs (the data
# inputs) and outputs must share one scale and zero point.
SAME_SCALE_OPS = {"RESHAPE": 1, "TRANSPOSE": 1, "SQUEEZE": 1, "EXPAND_DIMS": 1, "GATHER": 1,
                  "CONCATENATION": None, "MAXIMUM": 2, "MINIMUM": 2, "AVERAGE_POOL_2D": 1, "MAX_POOL_2D": 1}
# Ops whose int8 output parameters TFLite fixes (a group holding one of these takes its parameters).
FIXED_OUTPUT_OPS = {"SOFTMAX", "L2_NORMALIZATION", "LOGISTIC", "TANH"}
WEIGHTED_OPS = {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"}
# Ops that XNNPACK runs with its per-channel (QC8) kernels when their weights have a
# scale per output channel: those requantise float32 acc x scale rounded half to even
# on x86 and on ARM alike, so a tie rounds the same everywhere. Measured with
# internal/release's tie graphs (TestPerChannelTiesRoundAlike); XNNPACK 2.9 has no
# per-channel FULLY_CONNECTED, so that op is never in this set.
PER_CHANNEL_KERNEL_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D"}


class ExactError(ValueError):
    pass


def pow2_up(s: float) -> np.float32:
    """The smallest power of two >= s (a float32 scale)."""
    m, e = np.frexp(np.float64(s))
    return np.float32(np.ldexp(1.0, int(e) - (1 if m == 0.5 else 0)))


def is_pow2(s: float) -> bool:
    return s > 0 and np.frexp(np.float64(s))[0] == 0.5


def _channels(g: "_Graph", op: Any, name: str) -> int:
    """Output channels: the weights' first axis, except for DEPTHWISE_CONV_2D's
    (1, kh, kw, C) kernel, whose channels (and per-channel scales) are the last axis."""
    shape = [int(v) for v in g.tensor(int(op.inputs[1])).shape]
    return shape[-1] if name == "DEPTHWISE_CONV_2D" else shape[0]


def ties_round_alike(g: "_Graph", op: Any, name: str) -> bool:
    """Whether a weighted op meets only kernels that round a tie the same way on every
    CPU (XNNPACK's per-channel ones), so its weights and bias need no parity rule."""
    n = _channels(g, op, name)
    return name in PER_CHANNEL_KERNEL_OPS and n > 1 and len(g.scales(int(op.inputs[1]))) == n


class _Graph:
    def __init__(self, model: Any) -> None:
        from tensorflow.lite.tools import flatbuffer_utils

        self.model = model
        self.sub = model.subgraphs[0]
        self.names = [flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) for op in self.sub.operators]

    def tensor(self, i: int) -> Any:
        return self.sub.tensors[i]

    def const(self, i: int) -> bool:
        data = self.model.buffers[self.tensor(i).buffer].data
        return data is not None and len(data) > 0

    def data(self, i: int, dtype: Any) -> np.ndarray:
        return np.asarray(self.model.buffers[self.tensor(i).buffer].data, np.uint8).view(dtype)

    def set_data(self, i: int, values: np.ndarray) -> None:
        from tensorflow.lite.python import schema_py_generated as schema

        t = self.tensor(i)
        if sum(1 for o in self.sub.tensors if o.buffer == t.buffer) > 1:
            # The converter shares one buffer between equal constants; this one changes alone.
            self.model.buffers.append(schema.BufferT())
            t.buffer = len(self.model.buffers) - 1
        self.model.buffers[t.buffer].data = np.ascontiguousarray(values).view(np.uint8)

    def scales(self, i: int) -> np.ndarray:
        return np.asarray(self.tensor(i).quantization.scale, np.float64)

    def zero(self, i: int) -> int:
        return int(self.tensor(i).quantization.zeroPoint[0])

    def set_quant(self, i: int, scale: np.ndarray, zero: np.ndarray | None = None) -> None:
        q = self.tensor(i).quantization
        q.scale = np.asarray(scale, np.float32)
        if zero is not None:
            q.zeroPoint = np.asarray(zero, np.int64)

    def add_tensor(self, name: str, values: np.ndarray, tensor_type: int, scale: np.ndarray) -> int:
        from tensorflow.lite.python import schema_py_generated as schema

        buf = schema.BufferT()
        buf.data = np.ascontiguousarray(values).view(np.uint8)
        self.model.buffers.append(buf)
        t = schema.TensorT()
        t.shape = np.array(values.shape, np.int32)
        t.type = tensor_type
        t.buffer = len(self.model.buffers) - 1
        t.name = name.encode()
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale = np.asarray(scale, np.float32)
        t.quantization.zeroPoint = np.zeros(len(scale), np.int64)
        t.quantization.quantizedDimension = 0
        self.sub.tensors.append(t)
        return len(self.sub.tensors) - 1


def _requantize_outputs(g: _Graph) -> dict[int, int]:
    """int8->int8 QUANTIZE ops, output tensor -> input tensor.

    The converter inserts one where a fixed-scale output (SOFTMAX, L2_NORMALIZATION)
    meets a same-scale op (CONCATENATION) calibrated to another scale. It stays, with an
    output scale a power of two no coarser than its input's: then it multiplies by a
    power of two >= 1, which no kernel rounds.
    """
    return {int(op.outputs[0]): int(op.inputs[0]) for op, n in zip(g.sub.operators, g.names)
            if n == "QUANTIZE" and g.tensor(int(op.inputs[0])).type == INT8 and g.tensor(int(op.outputs[0])).type == INT8}


def _groups(g: _Graph) -> list[list[int]]:
    parent = list(range(len(g.sub.tensors)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for op, name in zip(g.sub.operators, g.names):
        if name in SAME_SCALE_OPS:
            n = SAME_SCALE_OPS[name]
            for t in list(op.inputs[:n]) + list(op.outputs):
                if int(t) >= 0:
                    parent[find(int(t))] = find(int(op.outputs[0]))
    out: dict[int, list[int]] = {}
    for i in range(len(g.sub.tensors)):
        out.setdefault(find(i), []).append(i)
    return list(out.values())


def _activation_scales(g: _Graph, weights: set[int]) -> dict[int, float]:
    """Every int8 tensor but the weights gets a power-of-two scale, one per group.

    Returns the old scale of each tensor whose scale changed (for its bias and data).
    """
    fixed = {int(t) for op, n in zip(g.sub.operators, g.names) if n in FIXED_OUTPUT_OPS for t in op.outputs}
    requant = _requantize_outputs(g)
    old: dict[int, float] = {}
    groups = _groups(g)
    # A requantisation's output group after its input's group (its scale is capped by it).
    groups.sort(key=lambda grp: any(i in requant for i in grp))
    for group in groups:
        members = [i for i in group if g.tensor(i).type == INT8 and i not in weights]
        if not members:
            continue
        for i in members:
            if len(g.scales(i)) != 1:
                raise ExactError(f"activation {g.tensor(i).name!r} is quantised per channel")
        pinned = [i for i in members if i in fixed]
        if pinned:
            scale, zero = g.scales(pinned[0])[0], g.zero(pinned[0])
            if not is_pow2(scale):
                raise ExactError(f"{g.tensor(pinned[0]).name!r}: fixed scale {scale} is not a power of two")
        else:
            scale, zero = pow2_up(max(g.scales(i)[0] for i in members)), g.zero(members[0])
            for i in members:
                if i in requant:
                    scale = min(scale, np.float32(g.scales(requant[i])[0]))
        for i in members:
            s0, z0 = g.scales(i)[0], g.zero(i)
            if s0 == scale and z0 == zero:
                continue
            old[i] = s0
            if g.const(i):  # a clip bound or the decoder's learned queries: requantised here
                v = (g.data(i, np.int8).astype(np.float64) - z0) * s0
                g.set_data(i, np.clip(np.round(v / scale) + zero, -128, 127).astype(np.int8))
            g.set_quant(i, [scale], [zero])
    return old


def input_means(graph: bytes, calibration: np.ndarray) -> dict[int, np.ndarray]:
    """Per-channel mean (real units) of every weighted op's input over the calibration
    images (uint8 or int8 as the graph's input takes them), from the converted graph.

    Raises ExactError for an empty calibration set or one that does not fit the input.
    """
    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils

    if len(calibration) == 0:
        raise ExactError("bias correction needs at least one calibration image")
    g = _Graph(flatbuffer_utils.convert_bytearray_to_object(bytearray(graph)))
    wanted = sorted({int(op.inputs[0]) for op, n in zip(g.sub.operators, g.names) if n in WEIGHTED_OPS})
    it = tf.lite.Interpreter(model_content=graph, experimental_preserve_all_tensors=True, num_threads=os.cpu_count())
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    if tuple(calibration.shape[1:]) != tuple(inp["shape"][1:]):
        raise ExactError(f"calibration images {tuple(calibration.shape[1:])} do not fit the graph's input {tuple(inp['shape'][1:])}")
    sums = {i: np.zeros(int(g.tensor(i).shape[-1]), np.float64) for i in wanted}
    for im in calibration:
        it.set_tensor(inp["index"], im[None].astype(inp["dtype"]))
        it.invoke()
        for i in wanted:
            v = it.get_tensor(i)
            sums[i] += v.reshape(-1, v.shape[-1]).astype(np.float64).mean(0)
    out = {}
    for i in wanted:
        q = g.tensor(i).quantization
        quantised = q is not None and q.scale is not None and len(q.scale) > 0
        scale, zero = (g.scales(i)[0], g.zero(i)) if quantised else (1.0, 0)
        out[i] = (sums[i] / len(calibration) - zero) * scale
    return out


def _weighted(g: _Graph, op: Any, name: str, old_in: dict[int, float], means: dict[int, np.ndarray]) -> None:
    """Power-of-two weight scales; where ties could round two ways, even weights and a
    bias whose parity rules them out; with the input's means, the bias corrected for
    the weights' new rounding."""
    x, w, o = int(op.inputs[0]), int(op.inputs[1]), int(op.outputs[0])
    sx_old = old_in.get(x, g.scales(x)[0])
    sx, so = g.scales(x)[0], g.scales(o)[0]
    sw_old = g.scales(w)
    depthwise = name == "DEPTHWISE_CONV_2D"
    n = _channels(g, op, name)
    tie_free = ties_round_alike(g, op, name)
    wq = g.data(w, np.int8).astype(np.float64)
    wq = wq.reshape(-1, n).T if depthwise else wq.reshape(n, -1)
    per_channel = len(sw_old) == n and n > 1
    per = sw_old if len(sw_old) == n else np.full(n, sw_old[0])
    real = wq * per[:, None]
    # Stored weights on scale S: |m| <= 127 (even ones: |2m| <= 126) must hold the
    # largest weight. An all-zero row keeps (a power of two near) its old scale, so its
    # bias stays in int32 range.
    top = 127.0 if tie_free else 126.0

    def scale_for(r: np.ndarray, old: float) -> np.float32:
        big = float(np.abs(r).max())
        return pow2_up(big / top) if big > 0 else pow2_up(old)

    if len(op.inputs) > 2 and int(op.inputs[2]) >= 0:
        b = int(op.inputs[2])
        b_real = g.data(b, np.int32).astype(np.float64) * (sx_old * per)
    else:
        b = -1
        b_real = np.zeros(n)
    # A channel whose weights are nearly zero but whose bias is not (a dead channel
    # after BatchNorm folding: weights 1e-9, bias -1.2 in EfficientNet-Lite0's stem)
    # gets a scale coarse enough for the bias to fit in 2^30 steps; its weights round
    # to zero, which they nearly are.
    floor = np.array([pow2_up(v / (sx * 2**30)) if v > 0 else 0.0 for v in np.abs(b_real)], np.float64)
    if per_channel:
        S = np.array([scale_for(r, s) for r, s in zip(real, per)], np.float64)
        S = np.maximum(S, floor)
    else:
        S = np.full(n, max(scale_for(real, per[0]), floor.max(initial=0.0)), np.float64)
    if tie_free:
        m = np.clip(np.round(real / S[:, None]), -127, 127).astype(np.int8)
    else:
        m = (2 * np.round(real / (2 * S[:, None]))).astype(np.int8)
    mean_in = means.get(x)
    if mean_in is not None:
        # The output's mean moved by sum_j (new - old weight)_j E[x_j] (padding aside).
        dw = m.astype(np.float64) * S[:, None] - real
        if depthwise:
            shift = dw.sum(1) * mean_in
        else:
            shift = (dw.reshape(n, -1, len(mean_in)) * mean_in).sum((1, 2))
        b_real = b_real - shift
    g.set_data(w, (m.T if depthwise else m).reshape(-1))
    nq = n if per_channel else 1
    g.set_quant(w, S[:nq], np.zeros(nq, np.int64))
    bias_scale = sx * S
    k = np.log2(so / bias_scale)
    if not np.all(k == np.round(k)):
        raise ExactError(f"{g.tensor(o).name!r}: multiplier is not a power of two")
    exact = b_real / bias_scale
    bq = np.round(exact)
    # k >= 2: odd accumulators (even weights + odd bias) never sit on a half.
    # k == 1: even accumulators halve exactly. k <= 0: no rounding at all.
    want_odd = k >= 2
    fix = (bq % 2 == 0) == want_odd
    fix &= (k >= 1) & (not tie_free)
    bq = np.where(fix, bq + np.where(exact >= bq, 1, -1), bq)
    if np.abs(bq).max(initial=0) >= 2**31:
        raise ExactError(f"{g.tensor(o).name!r}: bias out of int32 range")
    if b < 0:
        b = g.add_tensor(g.tensor(o).name.decode() + "/exact_bias", bq.astype(np.int32), INT32, bias_scale[:nq])
        inputs = [int(i) for i in op.inputs]
        op.inputs = np.array(inputs[:2] + [b] + inputs[3:], np.int32)
    else:
        g.set_data(b, bq.astype(np.int32))
        g.set_quant(b, bias_scale[:nq], np.zeros(nq, np.int64))


def _unshare(g: _Graph) -> None:
    """Gives each weighted op its own weight and bias tensors: the converter shares equal
    constants (the identity matrices of model._own_scale), but each op's weight scale,
    bias scale and bias parity depend on its own input and output."""
    seen: set[int] = set()
    for op, n in zip(g.sub.operators, g.names):
        if n not in WEIGHTED_OPS:
            continue
        inputs = [int(i) for i in op.inputs]
        for slot in (1, 2):
            if slot >= len(inputs) or inputs[slot] < 0:
                continue
            t = inputs[slot]
            if t in seen:
                src = g.tensor(t)
                dtype = np.int8 if src.type == INT8 else np.int32
                c = g.add_tensor(src.name.decode() + f"/copy{len(g.sub.tensors)}", g.data(t, dtype).copy(), src.type, g.scales(t))
                g.tensor(c).shape = np.array(src.shape, np.int32)
                g.tensor(c).quantization.zeroPoint = np.array(src.quantization.zeroPoint, np.int64)
                g.tensor(c).quantization.quantizedDimension = src.quantization.quantizedDimension
                inputs[slot] = c
            seen.add(inputs[slot])
        op.inputs = np.array(inputs, np.int32)


def make_exact(graph: bytes, calibration: np.ndarray | None = None) -> bytes:
    """The graph with the scales, weights and biases described above; raises ExactError
    for a graph this cannot make exact (per-channel activations, computed weights).
    With calibration images (N, H, W, C) as the graph's input takes them, every bias is
    corrected for its weights' rounding (see the module doc); without, none is."""
    from tensorflow.lite.tools import flatbuffer_utils

    means = input_means(graph, calibration) if calibration is not None else {}
    g = _Graph(flatbuffer_utils.convert_bytearray_to_object(bytearray(graph)))
    for op, n in zip(g.sub.operators, g.names):
        if n in WEIGHTED_OPS and not g.const(int(op.inputs[1])):
            raise ExactError(f"{n} {g.tensor(int(op.outputs[0])).name!r} has non-constant weights")
    _unshare(g)
    weights = {int(op.inputs[1]) for op, n in zip(g.sub.operators, g.names) if n in WEIGHTED_OPS}
    old = _activation_scales(g, weights)
    for op, n in zip(g.sub.operators, g.names):
        if n in WEIGHTED_OPS:
            _weighted(g, op, n, old, means)
    check(g)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(g.model))


def check(g: _Graph) -> None:
    """Raises ExactError where a requantising op could round two ways."""
    for op, n in zip(g.sub.operators, g.names):
        out = int(op.outputs[0])
        if n == "QUANTIZE" and g.tensor(int(op.inputs[0])).type == INT8:
            if g.scales(int(op.inputs[0]))[0] < g.scales(out)[0]:
                raise ExactError(f"int8 requantisation {g.tensor(out).name!r} to a coarser scale")
        if g.tensor(out).type == INT8 and not all(is_pow2(s) for s in g.scales(out)):
            raise ExactError(f"{n} {g.tensor(out).name!r}: scale {g.scales(out)} is not a power of two")
        if n in WEIGHTED_OPS and not all(is_pow2(s) for s in g.scales(int(op.inputs[1]))):
            raise ExactError(f"{n} {g.tensor(out).name!r}: a weight scale is not a power of two")
        if n in WEIGHTED_OPS and not ties_round_alike(g, op, n):
            w, b = int(op.inputs[1]), int(op.inputs[2])
            if np.any(g.data(w, np.int8) % 2):
                raise ExactError(f"{n} {g.tensor(out).name!r}: odd weights")
            k = np.log2(g.scales(out)[0] / (g.scales(int(op.inputs[0]))[0] * g.scales(w)))
            bq = g.data(b, np.int32)
            if np.any((k >= 2) & (bq % 2 == 0)) or np.any((k == 1) & (bq % 2 == 1)):
                raise ExactError(f"{n} {g.tensor(out).name!r}: bias parity allows a tie")
        if n == "BATCH_MATMUL":
            a, b = (g.scales(int(i))[0] for i in op.inputs[:2])
            if not is_pow2(a * b / g.scales(out)[0]):
                raise ExactError(f"BATCH_MATMUL {g.tensor(out).name!r}: multiplier is not a power of two")

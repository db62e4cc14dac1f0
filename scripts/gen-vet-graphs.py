"""Write crash.tflite and hang.tflite, two graphs that the TFLite 2.9 C library cannot survive.

Usage: training/.venv/bin/python scripts/gen-vet-graphs.py OUTDIR

They test the vetting child (engine/vet): a graph is loaded and warmed up in a child
process first, so one that kills or hangs the runtime costs the child, not the daemon.
Both have the demo's tensors (models/demo/adtr.tflite.json): one input uint8
[1,224,224,3] and one output int8 [1,14,14], scale 0.125, zero point -128, so they pass
every check made before the warm-up inference. Each samples 14x14 input pixels with
GATHER_ND and requantises them (QUANTIZE). XNNPACK takes neither GATHER_ND nor WHILE,
so the delegate on or off makes no difference.

crash.tflite: the first GATHER_ND index has a batch coordinate of 14000 where the batch
  is 1, so the kernel copies from about 2 GiB past the input. TFLite before 2.10 checks
  only that indices are not negative (CVE-2022-35937, GHSA-63xm-rx5p-xvqr, fixed in
  2.10.0). The graph loads and allocates, and then the first TfLiteInterpreterInvoke
  dies with SIGSEGV.
hang.tflite: a WHILE op passes the input through first. Its cond subgraph returns a
  constant true, and its body hands its input back unchanged, so the first
  TfLiteInterpreterInvoke spins one core forever without growing memory.

The graphs are written straight with the flatbuffer schema that TensorFlow ships, not
with the converter. No network is needed, and the bytes are the same on every run.
"""

import importlib.util
import os
import sys
from typing import Any

import flatbuffers
import numpy as np

# The generated schema module, loaded on its own: importing tensorflow takes seconds.
_tf = importlib.util.find_spec("tensorflow")
assert _tf is not None and _tf.origin is not None, "tensorflow is not installed"
_spec = importlib.util.spec_from_file_location(
    "tflite_schema", os.path.join(os.path.dirname(_tf.origin), "lite", "python", "schema_py_generated.py"))
assert _spec is not None and _spec.loader is not None
S: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(S)

H, W, C, GRID = 224, 224, 3, 14


def graph(kind: str) -> bytes:
    """The graph for kind, "crash" or "hang", as flatbuffer bytes."""
    m = S.ModelT()
    m.version, m.description = 3, f"adtrd vet test graph: {kind}"
    m.buffers, m.operatorCodes, m.subgraphs = [S.BufferT()], [], []

    def subgraph(name: str) -> Any:
        sg = S.SubGraphT()
        sg.name, sg.tensors, sg.operators, sg.inputs, sg.outputs = name, [], [], [], []
        m.subgraphs.append(sg)
        return sg

    def tensor(sg: Any, name: str, shape: list[int], ttype: int, data: np.ndarray | None = None,
               quant: tuple[float, int] | None = None) -> int:
        t = S.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, ttype, 0
        if data is not None:
            b = S.BufferT()
            b.data = list(data.tobytes())
            m.buffers.append(b)
            t.buffer = len(m.buffers) - 1
        if quant is not None:
            t.quantization = S.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [quant[0]], [quant[1]]
        sg.tensors.append(t)
        return len(sg.tensors) - 1

    def op(sg: Any, code: int, ins: list[int], outs: list[int], options: Any = None, otype: int = 0) -> None:
        c = S.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = code, code, 1
        m.operatorCodes.append(c)
        o = S.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = len(m.operatorCodes) - 1, ins, outs
        o.builtinOptionsType, o.builtinOptions = otype, options
        sg.operators.append(o)

    T = S.TensorType
    image = [1, H, W, C]
    main = subgraph("main")
    x = tensor(main, "image", image, T.UINT8, quant=(1.0, 0))
    if kind == "hang":
        cond, body = subgraph("cond"), subgraph("body")
        cond.inputs = [tensor(cond, "image", image, T.UINT8, quant=(1.0, 0))]
        cond.outputs = [tensor(cond, "true", [], T.BOOL, data=np.array(True))]
        body.inputs = body.outputs = [tensor(body, "image", image, T.UINT8, quant=(1.0, 0))]
        looped = tensor(main, "looped", image, T.UINT8, quant=(1.0, 0))
        w = S.WhileOptionsT()
        w.condSubgraphIndex, w.bodySubgraphIndex = 1, 2
        op(main, S.BuiltinOperator.WHILE, [x], [looped], w, S.BuiltinOptions.WhileOptions)
        x = looped
    # [n, y, x, channel] of the centre pixel of each 16x16 cell, channel 0
    centre = np.arange(GRID, dtype=np.int32) * (H // GRID) + H // GRID // 2
    idx = np.zeros((1, GRID, GRID, 4), np.int32)
    idx[..., 1], idx[..., 2] = centre[:, None], centre[None, :]
    if kind == "crash":
        idx[0, 0, 0, 0] = 14000  # 14000 * 224*224*3 bytes, just under 2**31: far past the input
    sampled = tensor(main, "sampled", [1, GRID, GRID], T.UINT8, quant=(1.0, 0))
    op(main, S.BuiltinOperator.GATHER_ND, [x, tensor(main, "indices", list(idx.shape), T.INT32, data=idx)], [sampled])
    y = tensor(main, "map", [1, GRID, GRID], T.INT8, quant=(0.125, -128))
    op(main, S.BuiltinOperator.QUANTIZE, [sampled], [y])
    main.inputs, main.outputs = [0], [y]

    b = flatbuffers.Builder(1 << 16)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTDIR", file=sys.stderr)
        return 2
    os.makedirs(argv[1], exist_ok=True)
    for kind in ("crash", "hang"):
        with open(os.path.join(argv[1], f"{kind}.tflite"), "wb") as f:
            f.write(graph(kind))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

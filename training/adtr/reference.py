"""The reference frame: one synthetic input whose score each engine's export records.

The daemon runs its warm-up inference on the same frame (model.ReferenceFrame in Go)
and compares the score with the one recorded here for the engine it runs, so a graph
run by an engine that computes it differently (another runtime, a delegate that
rounds otherwise) is said at load, before its threshold decides parts.
"""

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import scoring

RULE = "16x16 checkerboard, uint8 RGB: 100 + 10c where (x >> 4) + (y >> 4) is even, else 160 - 10c (x the column, c the channel)"


def reference_frame(size: int) -> np.ndarray:
    """The reference frame as uint8 [size, size, 3] RGB (HWC). A plain pattern inside
    the map's range on the demo (its int8 map spans 19..60, far from saturation), so
    a different computation shows in the score."""
    y, x = np.mgrid[0:size, 0:size].astype(np.int64)
    even = ((x >> 4) + (y >> 4)) % 2 == 0
    planes = [np.where(even, 100 + 10 * c, 160 - 10 * c) for c in range(3)]
    return np.stack(planes, axis=-1).astype(np.uint8)


def reference_score(runner: Callable[[np.ndarray], np.ndarray], size: int, kernel: int) -> float:
    """The image score of the reference frame through runner (a dequantised map)."""
    m = runner(reference_frame(size))
    _, scores = scoring.score_maps(m[None], size, kernel)
    return float(scores[0])


def engine_entry(score: float, tolerance: float) -> dict[str, Any]:
    """One engine's entry in the metadata's "engines"."""
    return {"reference_score": score, "tolerance": tolerance, "reference_frame": RULE}


# Float graphs on ONNX Runtime: another build or CPU (ORT 1.17 here, 1.24 in the
# daemon) sums in another order; the map moves by float rounding, far under a step.
ONNX_TOLERANCE = 0.01

# QDQ int8 graphs on ONNX Runtime: its int8 kernels (MLAS) requantise with float
# scales, which builds and CPUs may round a step apart; a step of the map moves the
# score by up to about its scale. Wide enough for that, narrow enough to catch
# another graph.
QDQ_TOLERANCE = 0.1


def refresh(graph: Path) -> dict[str, Any]:
    """Record the engine's reference score in graph's metadata (GRAPH.json), rewriting
    it atomically; the graph itself is not touched. A .tflite is scored by TFLite
    (engine "tflite", exact), an .onnx by ONNX Runtime (engine "onnxruntime")."""
    import json

    from .evaluate import ONNXRunner, TFLiteRunner
    from .export import _write_atomic, check_graph_input, metadata_path, read_metadata

    # A symlinked metadata file is rewritten where it points, not replaced by a copy.
    meta_path = Path(os.path.realpath(metadata_path(graph)))
    meta = read_metadata(graph)  # also refuses another graph's metadata (sha256)
    size, kernel = meta["input"]["width"], meta["pool_kernel"]
    if graph.suffix == ".onnx":
        qdq = str(meta.get("quantisation", {}).get("kind", "")).startswith("int8")
        name, runner, tolerance = "onnxruntime", ONNXRunner(graph), QDQ_TOLERANCE if qdq else ONNX_TOLERANCE
    else:
        # Exact int8 graphs give the same map on every CPU path (exact.py): no tolerance
        # beyond the scorer's float rounding, which the daemon allows for itself.
        name, runner, tolerance = "tflite", TFLiteRunner(graph), 0.0
    check_graph_input(graph, meta, runner.input_shape)
    meta.setdefault("engines", {})[name] = engine_entry(reference_score(runner, size, kernel), tolerance)
    _write_atomic(meta_path, (json.dumps(meta, indent=2, sort_keys=True, allow_nan=False) + "\n").encode())
    return meta

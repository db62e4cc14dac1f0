"""Export: a full-integer int8 TFLite graph and a float ONNX graph, each with metadata.

The TFLite graph takes uint8 RGB at the model's size (normalisation is inside) and
outputs the int8 low-resolution anomaly map with its quantisation parameters. It is
built so that TFLite 2.9 (the daemon's C library) runs it; the metadata JSON beside it
tells the daemon everything model-specific.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import tensorflow as tf

from . import anomalies, reference, scoring, strictjson
from .checkpoint import Checkpoint, refuse_existing
from .config import ModelConfig
from .data import load_image
from .preprocess import DaemonDecoder
from . import exact
from .exact import make_exact
from .model import int8_lowering

METADATA_FORMAT = "adtr-model/1"
# Why 3 sigma (and never below the largest held-out score): about one good part in
# a thousand rejected if good scores were Gaussian, while subtle defects still land
# above it. Held-out sets are small, so `adtrd calibrate` refines it on the line.
THRESHOLD_SIGMAS = 3.0


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the daemon runs as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_pair(out: Path, graph: bytes, meta_out: Path, meta: dict[str, Any]) -> None:
    # Serialised first: metadata that cannot be written (a value JSON cannot carry)
    # must not leave a graph without its metadata behind.
    text = (json.dumps(meta, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    _write_atomic(out, graph)
    _write_atomic(meta_out, text)


def metadata_path(graph: Path) -> Path:
    return graph.with_suffix(graph.suffix + ".json")


class MetadataError(ValueError):
    """A graph's metadata (GRAPH.json) that the toolkit cannot use; the message names the file and the key."""


def _short(v: object) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:40] + "..."


def read_metadata(graph: Path) -> dict[str, Any]:
    """GRAPH.json beside graph, parsed and checked for what the toolkit reads from it
    before it runs the graph: input.width and input.height (equal, 16..4096 px),
    pool_kernel (1..width, as the daemon's model.Parse allows), and the optional
    quantisation and engines objects. An edited or foreign file is refused here with
    MetadataError rather than failing later with a bare KeyError."""
    mp = metadata_path(graph)
    try:
        meta = strictjson.load(mp, MetadataError)
    except FileNotFoundError:
        raise MetadataError(f"{mp}: metadata missing beside the graph") from None
    if not isinstance(meta, dict):
        raise MetadataError(f"{mp}: want a JSON object, got {type(meta).__name__}")
    sha = hashlib.sha256(graph.read_bytes()).hexdigest()
    if meta.get("sha256") != sha:
        # Another graph's metadata: its sizes and threshold are not this graph's (the
        # daemon refuses it too).
        raise MetadataError(f"{mp}: describes sha256 {str(meta.get('sha256'))[:12]}.., {graph} is {sha[:12]}..: not this graph's metadata")

    def whole(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    inp = meta.get("input")
    if not isinstance(inp, dict):
        raise MetadataError(f"{mp}: input: missing or not an object")
    w, h = inp.get("width"), inp.get("height")
    if not whole(w) or not 16 <= w <= 4096:
        raise MetadataError(f"{mp}: input.width {w!r}: want a whole number of pixels in 16..4096")
    if not whole(h) or h != w:
        raise MetadataError(f"{mp}: input.height {h!r}: want the width, {w} (the graphs take square frames)")
    k = meta.get("pool_kernel")
    if not whole(k) or not 1 <= k <= w:
        raise MetadataError(f"{mp}: pool_kernel {k!r}: want a whole number in 1..{w}")
    # The threshold and normal scores were computed with the model section's values, as
    # the daemon's model.Parse checks too: an edit of the top level alone scores otherwise.
    model = meta.get("model")
    if model is not None and not isinstance(model, dict):
        raise MetadataError(f"{mp}: model: want an object, got {type(model).__name__}")
    for top, key, mine in (("input.width", "input_size", w), ("pool_kernel", "pool_kernel", k)):
        if isinstance(model, dict) and key in model and model[key] != mine:
            raise MetadataError(f"{mp}: {top} {mine} disagrees with model.{key} {model[key]!r} (the threshold was set with the latter)")
    for key in ("quantisation", "engines"):
        if key in meta and not isinstance(meta[key], dict):
            raise MetadataError(f"{mp}: {key}: want an object, got {type(meta[key]).__name__}")
    for name, e in meta.get("engines", {}).items():
        if not re.fullmatch(r"[a-z0-9_]+", name):
            # The daemon's rule for model.engine names; repr keeps a newline or a lone
            # surrogate in the name from breaking the one-line message.
            raise MetadataError(f"{mp}: engines: {name[:40]!r} is not an engine's name (lowercase letters, digits, _)")
        if not isinstance(e, dict):
            raise MetadataError(f"{mp}: engines.{name}: want an object, got {type(e).__name__}")
        for field in ("reference_score", "tolerance"):
            v = e.get(field)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (field == "tolerance" and v < 0):
                raise MetadataError(f"{mp}: engines.{name}.{field} {_short(v)}: want a {'non-negative ' if field == 'tolerance' else ''}number")
    return meta


def check_graph_input(graph: Path, meta: dict[str, Any], shape: Sequence[Any]) -> None:
    """Refuse metadata whose input size is not the graph's input tensor (NHWC; ONNX
    may name its batch axis): MetadataError naming both files."""
    w = meta["input"]["width"]
    if list(shape[1:3]) != [w, w]:
        raise MetadataError(f"{graph}: input tensor is {list(shape)}, its metadata {metadata_path(graph)} says {w}x{w}")


def calibration_set(good: np.ndarray, seed: int) -> np.ndarray:
    """Good images plus a third as many synthetic anomalies.

    Ranges calibrated on good images alone clip every anomaly's map at the largest
    good value, leaving almost no margin between a defect and the threshold.
    """
    bad, _ = anomalies.make(good, max(1, len(good) // 3), seed + 11)
    return np.concatenate([good, bad])


def convert_int8(ck: Checkpoint, calibration: np.ndarray) -> bytes:
    """Full-integer conversion; calibration are uint8 images (N, S, S, 3).

    Built and converted under int8_lowering: sums become CONCATENATION +
    FULLY_CONNECTED, whose int8 kernels round as TFLite 2.9's do, and every
    BATCH_MATMUL sums each product twice (see model.py); then exact.make_exact sets
    scales, weights and biases so that every kernel rounds alike (amd64, arm64, Python),
    the biases corrected on the same calibration images.
    """
    with int8_lowering():
        return make_exact(_convert_int8(ck, calibration), calibration)


def _convert_int8(ck: Checkpoint, calibration: np.ndarray) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(ck.model.export_model())
    conv.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative() -> Any:
        for im in calibration:
            yield [im[None].astype(np.float32)]

    conv.representative_dataset = representative
    # BUILTINS_INT8 only: conversion fails rather than leave a float op behind.
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.int8
    return conv.convert()


def convert_onnx(ck: Checkpoint, opset: int = 13) -> bytes:
    import tf2onnx

    model = ck.model.export_model()
    size = ck.cfg.input_size
    spec = (tf.TensorSpec((1, size, size, 3), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    return proto.SerializeToString()


# The QDQ int8 ONNX graph (TensorRT's int8 and ONNX Runtime's int8 kernels take QDQ):
# ONNX Runtime's static quantisation of the float export, MinMax ranges from the same
# calibration images as the TFLite graph's (good images plus synthetic anomalies),
# int8 weights per output channel (symmetric) and int8 activations per tensor. The
# nearest-neighbour head (its distance table, ArgMin, Gathers and the map) stays float
# (head_nodes): quantised whole, its ArgMin over int8 scores and the Gather of int8
# tokens gave an all-zero map; with the backbone alone in int8 the map is 0.09 from
# float on average (of 6.3, the tiny backbone, tests/test_heads.py).
QDQ_RECIPE = ("onnxruntime.quantization.quantize_static, QDQ format, MinMax calibration on the TFLite graph's "
              "calibration set (good + synthetic anomalies), weights int8 per channel symmetric, activations int8 per tensor; "
              "a nearest-neighbour head stays float")


def map_meaning(cfg: ModelConfig) -> str:
    """The metadata's output.meaning: what the map's values are, for a person reading it."""
    if cfg.reconstructor == "memory" and cfg.memory_density_k:
        return (f"anomaly map s(u) = w(m*) ||f - m*||_2: the distance to the nearest memory token m*, weighted by "
                f"m*'s density (its {cfg.memory_density_k} nearest memory tokens)")
    return "anomaly map s(u) = ||f - f^||_2"


def head_nodes(graph: Any) -> list[str]:
    """Names of the nodes of an ONNX graph (onnx.ModelProto) that belong to a
    nearest-neighbour head: every node downstream of the features that the head's
    distance table (the Conv feeding its ArgMin) reads. Empty for ADTR's graph."""
    made_by = {o: n for n in graph.graph.node for o in n.output}
    argmins = [n for n in graph.graph.node if n.op_type == "ArgMin"]
    if not argmins:
        return []
    table = made_by.get(argmins[0].input[0])
    if table is None or table.op_type != "Conv":
        raise ValueError(f"ONNX graph: the ArgMin {argmins[0].name!r} does not read a Conv distance table "
                         f"({table.op_type if table is not None else 'a graph input'}): not the nearest-neighbour head export knows")
    reached, names = {table.input[0]}, []
    for n in graph.graph.node:  # ONNX keeps nodes in topological order
        if any(i in reached for i in n.input):
            names.append(n.name)
            reached.update(n.output)
    return names


def convert_onnx_qdq(float_graph: bytes, calibration: np.ndarray) -> bytes:
    """The float ONNX graph quantised to QDQ int8 (QDQ_RECIPE); calibration are uint8
    images (N, S, S, 3), fed as the float32 0..255 input the graph takes."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = onnx.load_from_string(float_graph).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            im = next(self.it, None)
            return None if im is None else {name: im[None].astype(np.float32)}

    with tempfile.TemporaryDirectory() as d:
        src, pre, out = Path(d) / "float.onnx", Path(d) / "pre.onnx", Path(d) / "qdq.onnx"
        src.write_bytes(float_graph)
        quant_pre_process(str(src), str(pre))
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, per_channel=True, calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
                        nodes_to_exclude=head_nodes(onnx.load(str(pre))))
        return out.read_bytes()


def _normal_stats(scores: np.ndarray) -> dict[str, float]:
    return {
        "count": int(len(scores)),
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "min": float(scores.min()),
        "max": float(scores.max()),
    }


def suggested_threshold(scores: np.ndarray) -> float:
    return float(max(scores.mean() + THRESHOLD_SIGMAS * scores.std(), scores.max()))


def build_metadata(
    ck: Checkpoint,
    graph_path: Path,
    graph: bytes,
    runner: Callable[[np.ndarray], np.ndarray],
    heldout: np.ndarray,
    output: dict[str, Any],
    version: str,
) -> dict[str, Any]:
    """Metadata for one exported graph; normal-score statistics come from the graph itself."""
    cfg = ck.cfg
    maps = np.stack([runner(im) for im in heldout])
    finite = bool(np.isfinite(maps).all())
    if not finite or np.ptp(maps) == 0:
        # A graph that maps every image to one constant (or to NaN) decides nothing; the
        # export must fail rather than write it with a threshold of that constant.
        raise ValueError(f"{graph_path}: the exported graph gives {'a constant' if finite else 'non-finite'} "
                         f"anomaly map on the {len(heldout)} held-out good images: broken export, not written")
    _, scores = scoring.score_maps(maps, cfg.input_size, cfg.pool_kernel)
    stats = _normal_stats(scores)
    return {
        "format": METADATA_FORMAT,
        "model_version": version,
        "graph": graph_path.name,
        "sha256": hashlib.sha256(graph).hexdigest(),
        "input": {
            "width": cfg.input_size, "height": cfg.input_size, "channels": 3,
            "layout": "NHWC", "colour": "RGB",
            "dtype": "uint8" if graph_path.suffix == ".tflite" else "float32",
            "range": [0, 255], "normalisation": "in graph",
        },
        "output": output,
        "stride": cfg.stride,
        "grid": [cfg.grid, cfg.grid],
        "upsample": scoring.UPSAMPLE,
        "pool_kernel": cfg.pool_kernel,
        "image_score": "max of stride-1 unpadded average pool of the upsampled map",
        "normal_scores": stats,
        "threshold": suggested_threshold(scores),
        "threshold_rule": f"max(mean + {THRESHOLD_SIGMAS:g} std, max) of held-out good images",
        "model": cfg.to_dict(),
        "training": {"data": ck.data, "history": ck.history, "heldout_images": len(heldout)},
    }


def load_heldout(ck: Checkpoint, decoder: DaemonDecoder | None = None) -> np.ndarray:
    if not ck.heldout:
        raise ValueError("checkpoint has no held-out good images to calibrate the threshold")
    return np.stack([load_image(Path(p), ck.cfg.input_size, decoder=decoder) for p in ck.heldout])


def export_tflite(ck: Checkpoint, out: Path, good: np.ndarray, version: str, decoder: DaemonDecoder | None = None) -> dict[str, Any]:
    """Write out (.tflite) and out.json; good images calibrate the int8 ranges; the
    threshold comes from the held-out images, read through decoder when given."""
    from .evaluate import TFLiteRunner

    meta_out = metadata_path(out)
    refuse_existing(out)
    refuse_existing(meta_out)
    heldout = load_heldout(ck, decoder)  # before the conversion: a missing image fails in seconds, not minutes
    calibration = calibration_set(good, ck.cfg.seed)
    graph = convert_int8(ck, calibration)
    # Scored through a scratch copy so nothing lands at `out` unless both files are good.
    with tempfile.TemporaryDirectory() as d:
        scratch = Path(d) / out.name
        scratch.write_bytes(graph)
        runner = TFLiteRunner(scratch)
        scale, zero = runner.out["quantization"]
        output = {
            "shape": [int(v) for v in runner.out["shape"]], "dtype": "int8",
            "scale": float(scale), "zero_point": int(zero), "meaning": map_meaning(ck.cfg),
        }
        meta = build_metadata(ck, out, graph, runner, heldout, output, version)
        meta["engines"] = {"tflite": reference.engine_entry(reference.reference_score(runner, ck.cfg.input_size, ck.cfg.pool_kernel), 0.0)}
    meta["quantisation"] = {"kind": "full-integer int8", "calibration_images": {"good": int(len(good)), "synthetic_anomalies": int(len(calibration) - len(good))},
                            "converter": f"tensorflow {tf.__version__}", "runs_on": "TFLite >= 2.9",
                            # The daemon warns about graphs without it (exported before exact.py).
                            "rounding": exact.ROUNDING, "rounding_rule": exact.ROUNDING_RULE}
    _write_pair(out, graph, meta_out, meta)
    return meta


def export_onnx(ck: Checkpoint, out: Path, version: str, decoder: DaemonDecoder | None = None,
                good: np.ndarray | None = None) -> dict[str, Any]:
    """Write out (.onnx) and out.json: the float graph, or, when good images are given,
    the QDQ int8 graph calibrated on them (QDQ_RECIPE), for TensorRT's int8."""
    from .evaluate import ONNXRunner

    meta_out = metadata_path(out)
    refuse_existing(out)
    refuse_existing(meta_out)
    heldout = load_heldout(ck, decoder)
    graph = convert_onnx(ck)
    calibration = None
    if good is not None:
        calibration = calibration_set(good, ck.cfg.seed)
        graph = convert_onnx_qdq(graph, calibration)
    with tempfile.TemporaryDirectory() as d:
        scratch = Path(d) / out.name
        scratch.write_bytes(graph)
        runner = ONNXRunner(scratch)
        output = {"shape": [1, ck.cfg.grid, ck.cfg.grid], "dtype": "float32", "meaning": map_meaning(ck.cfg)}
        meta = build_metadata(ck, out, graph, runner, heldout, output, version)
        tol = reference.ONNX_TOLERANCE if calibration is None else reference.QDQ_TOLERANCE
        meta["engines"] = {"onnxruntime": reference.engine_entry(reference.reference_score(runner, ck.cfg.input_size, ck.cfg.pool_kernel), tol)}
    if calibration is None:
        meta["quantisation"] = {"kind": "none (float32)"}
    else:
        meta["quantisation"] = {"kind": "int8 QDQ", "recipe": QDQ_RECIPE,
                                "calibration_images": {"good": int(len(good)), "synthetic_anomalies": int(len(calibration) - len(good))}}
    _write_pair(out, graph, meta_out, meta)
    return meta

"""Image and pixel AUROC for a checkpoint or an exported graph (TFLite or ONNX)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import scoring
from .data import Split


@dataclass(frozen=True)
class Result:
    image_auroc: float
    pixel_auroc: float
    n_good: int
    n_defect: int
    per_kind: dict[str, float] = field(default_factory=dict)  # image AUROC of each defect kind vs good

    def line(self, name: str) -> str:
        kinds = ", ".join(f"{k} {v:.3f}" for k, v in sorted(self.per_kind.items()))
        return (f"{name}: image AUROC {self.image_auroc:.4f}, pixel AUROC {self.pixel_auroc:.4f} "
                f"({self.n_good} good, {self.n_defect} defective; per kind: {kinds})")


def evaluate_maps(maps: np.ndarray, split: Split, pool_kernel: int) -> Result:
    size = split.images.shape[1]
    up, scores = scoring.score_maps(maps, size, pool_kernel)
    kinds = np.array(split.kinds)
    good = kinds == "good"
    per_kind = {
        k: scoring.auroc(split.labels[good | (kinds == k)], scores[good | (kinds == k)])
        for k in sorted(set(split.kinds)) if k != "good"
    }
    return Result(
        scoring.auroc(split.labels, scores),
        scoring.pixel_auroc(split.masks, up),
        int(good.sum()),
        int((~good).sum()),
        per_kind,
    )


class TFLiteRunner:
    """Runs an exported .tflite with the Python interpreter and its default XNNPACK
    delegate, which takes the int8 FULLY_CONNECTED and CONV_2D as the daemon's
    `xnnpack` delegate does on TFLite 2.9 (same int8 results, amd64 and arm64)."""

    def __init__(self, path: str | Path, threads: int = 2) -> None:
        import tensorflow as tf

        self.it = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]
        self.input_shape = [int(d) for d in self.inp["shape"]]

    def raw(self, image: np.ndarray) -> np.ndarray:
        self.it.set_tensor(self.inp["index"], image.reshape(self.inp["shape"]).astype(self.inp["dtype"]))
        self.it.invoke()
        return self.it.get_tensor(self.out["index"])[0]

    def dequantise(self, raw: np.ndarray) -> np.ndarray:
        scale, zero = self.out["quantization"]
        if raw.dtype == np.float32:
            return raw
        return (raw.astype(np.float32) - zero) * scale

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.dequantise(self.raw(image))


class ONNXRunner:
    def __init__(self, path: str | Path, threads: int = 2) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.name = self.sess.get_inputs()[0].name
        self.input_shape = list(self.sess.get_inputs()[0].shape)  # NHWC; a named batch axis is a str

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.sess.run(None, {self.name: image[None].astype(np.float32)})[0][0]


def graph_maps(run: Callable[[np.ndarray], np.ndarray], images: Iterable[np.ndarray]) -> np.ndarray:
    return np.stack([run(im) for im in images])


def runner_for(path: str | Path) -> "TFLiteRunner | ONNXRunner":
    suffix = Path(path).suffix.lower()
    if suffix == ".tflite":
        return TFLiteRunner(path)
    if suffix == ".onnx":
        return ONNXRunner(path)
    raise ValueError(f"{path}: unknown graph type (expected .tflite or .onnx)")

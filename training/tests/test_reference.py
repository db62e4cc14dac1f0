"""The reference frame is the daemon's (model.ReferenceFrame) byte for byte, and an
export records the TFLite engine's score of it."""

import hashlib
import json
from pathlib import Path

import numpy as np

from adtr import reference

# The same hash as model/model_test.go's referenceFrame224.
FRAME_224 = "98352e8584ddc13c52fa428324d6b55f3b8c39346a44b9f549f38b540d93e8ec"

DEMO = Path(__file__).resolve().parents[2] / "models" / "demo"


def test_reference_frame_is_the_daemons() -> None:
    f = reference.reference_frame(224)
    assert f.shape == (224, 224, 3) and f.dtype == np.uint8
    assert hashlib.sha256(f.tobytes()).hexdigest() == FRAME_224
    # the rule at a square boundary: (x >> 4) + (y >> 4) even or odd
    assert list(f[0, 15]) == [100, 110, 120] and list(f[0, 16]) == [160, 150, 140]


def test_demo_metadata_records_the_tflite_score() -> None:
    meta = json.loads((DEMO / "adtr.tflite.json").read_text())
    from adtr.evaluate import TFLiteRunner

    score = reference.reference_score(TFLiteRunner(DEMO / "adtr.tflite"), 224, int(meta["pool_kernel"]))
    entry = meta["engines"]["tflite"]
    assert entry["reference_score"] == score and entry["tolerance"] == 0.0 and entry["reference_frame"] == reference.RULE


def test_demo_onnx_metadata_records_the_onnxruntime_score() -> None:
    meta = json.loads((DEMO / "adtr.onnx.json").read_text())
    from adtr.evaluate import ONNXRunner

    score = reference.reference_score(ONNXRunner(DEMO / "adtr.onnx"), 224, int(meta["pool_kernel"]))
    entry = meta["engines"]["onnxruntime"]
    # Float ONNX on another CPU sums in another order (AVX-512 against AVX2): measured
    # 4.6e-6 apart on an AMD EPYC, 0 on the machine that recorded it. A tenth of the
    # tolerance the daemon allows still catches another graph or another frame.
    assert abs(entry["reference_score"] - score) < reference.ONNX_TOLERANCE / 10 and entry["tolerance"] == reference.ONNX_TOLERANCE

"""models/demo is what the daemon ships and tests against: check it is coherent.

The golden file holds the Python TFLite interpreter's int8 maps; the TFLite 2.9 C
library must reproduce them within one quantisation step.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adtr import evaluate, scoring
from adtr.tflite_c import CInterpreter

DEMO = Path(__file__).resolve().parents[2] / "models" / "demo"


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads((DEMO / "golden.json").read_text())


def frame(name: str) -> np.ndarray:
    return np.asarray(Image.open(DEMO / "frames" / name).convert("RGB"))


def test_demo_files_agree_with_each_other(golden: dict) -> None:
    for graph in ("adtr.tflite", "adtr.onnx"):
        data = (DEMO / graph).read_bytes()
        meta = json.loads((DEMO / f"{graph}.json").read_text())
        assert meta["sha256"] == hashlib.sha256(data).hexdigest(), graph
        # The int8 graph the daemon runs stays under 4 MiB; the float ONNX graph carries the
        # backbone's 684k weights and the transformer's in float32 (6.3 MB for lite0).
        limit = (4 if graph.endswith(".tflite") else 8) << 20
        assert len(data) < limit, f"{graph} is {len(data)} bytes: the demo must stay small"
    assert golden["sha256"] == hashlib.sha256((DEMO / "adtr.tflite").read_bytes()).hexdigest()
    names = sorted(p.name for p in (DEMO / "frames").glob("*.png"))
    assert names == [f["file"] for f in golden["frames"]]
    for f in golden["frames"]:
        has_mask = (DEMO / "frames" / "masks" / f"{Path(f['file']).stem}_mask.png").is_file()
        assert has_mask == f["defective"], f["file"]
    kinds = {f["kind"] for f in golden["frames"]}
    assert {"good", "scratch", "stain", "hole", "cut_paste"} <= kinds


def test_tflite_29_c_library_reproduces_the_golden_maps(golden: dict) -> None:
    with CInterpreter(DEMO / "adtr.tflite") as c:
        assert (c.output_quant[0], c.output_quant[1]) == pytest.approx((golden["output"]["scale"], golden["output"]["zero_point"]))
        for f in golden["frames"]:
            got = c.run(frame(f["file"])).astype(np.int32).ravel()
            assert np.abs(got - np.array(f["map"])).max() <= 1, f["file"]


def test_python_interpreter_still_gives_the_golden_maps_and_scores(golden: dict) -> None:
    run = evaluate.TFLiteRunner(DEMO / "adtr.tflite")
    size, k = 224, golden["pool_kernel"]
    for f in golden["frames"]:
        raw = run.raw(frame(f["file"]))
        assert raw.astype(int).ravel().tolist() == f["map"], f["file"]
        score = float(scoring.image_scores(scoring.upsample(run.dequantise(raw), size), k))
        assert score == pytest.approx(f["score"], abs=1e-6)
        assert f["reject"] == (score > golden["threshold"])

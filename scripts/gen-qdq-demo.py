"""Write the demo's QDQ int8 ONNX graph: models/demo/adtr.onnx quantised as the toolkit
quantises an export (adtr.export.convert_onnx_qdq), calibrated on the demo's 8 good
frames plus synthetic anomalies made from them (adtr.export.calibration_set).

Usage: training/.venv/bin/python scripts/gen-qdq-demo.py OUT.onnx

engine/onnxruntime's TestQDQDemo runs it on the daemon's ONNX Runtime to show that the
engine runs QDQ graphs (TensorRT's int8 input) and how far their scores are from the int8
TFLite graph's. The toolkit's own export (`python -m adtr export --onnx-int8`) calibrates
on the training images instead; the demo's were not kept, so its frames stand in.
"""

import sys
from pathlib import Path

import numpy as np

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root / "training"))

from adtr import export  # noqa: E402
from adtr.data import load_image  # noqa: E402


def main(out: str) -> None:
    frames = sorted((root / "models/demo/frames").glob("*_good.png"))
    good = np.stack([load_image(f, 224) for f in frames])
    graph = export.convert_onnx_qdq((root / "models/demo/adtr.onnx").read_bytes(), export.calibration_set(good, 0))
    Path(out).write_bytes(graph)
    print(f"{out}: {len(graph)} bytes, calibrated on {len(frames)} good demo frames + synthetic anomalies")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

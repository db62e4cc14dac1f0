"""Builds models/demo: the demo graph, its frames and the golden file, from a fixed seed.

One command (`make demo-model`) regenerates everything here; the daemon's tests compare
their scores to golden.json, which the Python TFLite interpreter produced.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import checkpoint, evaluate, export, scoring, synth, train
from .config import preset
from .data import Dataset
from .tflite_c import CInterpreter

log = logging.getLogger("adtr.demo")

CATEGORY = "printed_part"
SEED = 0
GOOD_FRAMES = 8
FRAMES_PER_DEFECT = 2
# More parts than the tests train on: the demo is built once, not in CI. Epochs are
# the preset's own.
TRAIN_IMAGES = 200
# The recipe the committed demo graph was built with; the Go tests' golden maps, the
# field cases and the README's demo numbers all come from it (DEFAULT_PRESET moved to
# the nearest-neighbour head after it was built).
PRESET = "lite0-v1"
GRAPH = "adtr.tflite"
ONNX = "adtr.onnx"


def demo_frames(size: int) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, image, mask) in line order: good parts with a defect every few frames."""
    # Seeds distinct from the training and test splits: these are unseen parts.
    goods: list[tuple[str, np.ndarray, np.ndarray | None]] = [
        ("good", synth.good_image(CATEGORY, size, SEED + 1000, "demo", i), None) for i in range(GOOD_FRAMES)
    ]
    bads: list[tuple[str, np.ndarray, np.ndarray | None]] = [
        (d, *synth.defect_image(CATEGORY, d, size, SEED + 1000, i)) for i in range(FRAMES_PER_DEFECT) for d in synth.DEFECTS
    ]
    seq = []
    while goods or bads:
        if goods:
            seq.append(goods.pop(0))
        if bads:
            seq.append(bads.pop(0))
    return [(f"{n:03d}_{kind}", img, mask) for n, (kind, img, mask) in enumerate(seq)]


def golden(graph: Path, frames_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """The Python interpreter's raw int8 maps and scores on every demo frame."""
    runner = evaluate.TFLiteRunner(graph)
    size, kernel, thr = meta["input"]["width"], meta["pool_kernel"], meta["threshold"]
    rows = []
    for p in sorted(frames_dir.glob("*.png")):
        img = np.asarray(Image.open(p).convert("RGB"))
        raw = runner.raw(img)
        m = runner.dequantise(raw)
        score = float(scoring.image_scores(scoring.upsample(m, size), kernel))
        kind = p.stem.split("_", 1)[1]
        rows.append({
            "file": p.name, "kind": kind, "defective": kind != "good",
            "map": raw.astype(int).ravel().tolist(), "score": score, "reject": score > thr,
        })
    return {
        "graph": graph.name, "sha256": meta["sha256"], "interpreter": "tensorflow.lite.Interpreter (built-in kernels)",
        "output": meta["output"], "threshold": thr, "pool_kernel": kernel, "upsample": meta["upsample"],
        "frames": rows,
    }


def build(out: Path, work: Path, epochs: int | None = None) -> None:
    checkpoint.refuse_existing(out)
    if work.exists():
        shutil.rmtree(work)
    p = preset(PRESET)
    data = synth.write_category(work / "data", synth.SynthSpec(CATEGORY, n_train=TRAIN_IMAGES, seed=SEED))
    ds = Dataset(data)
    ck = train.train(p.model.replace(seed=SEED), p.train, ds, epochs=epochs)
    ckpath = checkpoint.save(ck, work / "checkpoint")
    ck = checkpoint.load(ckpath)
    stage = work / "out"
    stage.mkdir()
    version = f"demo-{CATEGORY}-{PRESET}-seed{SEED}"
    calib = ds.train(ck.cfg.input_size)[:64]
    meta = export.export_tflite(ck, stage / GRAPH, calib, version)
    export.export_onnx(ck, stage / ONNX, version)

    split = ds.test(ck.cfg.input_size)
    k = ck.cfg.pool_kernel
    results = {"float (Keras)": evaluate.evaluate_maps(ck.model.maps(split.images), split, k)}
    results["int8 TFLite (Python)"] = evaluate.evaluate_maps(evaluate.graph_maps(evaluate.TFLiteRunner(stage / GRAPH), split.images), split, k)
    with CInterpreter(stage / GRAPH) as c:
        s, z = c.output_quant
        maps = np.stack([(c.run(im)[0].astype(np.float32) - z) * s for im in split.images])
        results[f"int8 TFLite {c.version} (C library)"] = evaluate.evaluate_maps(maps, split, k)
    results["float ONNX"] = evaluate.evaluate_maps(evaluate.graph_maps(evaluate.ONNXRunner(stage / ONNX), split.images), split, k)
    for name, r in results.items():
        log.info(r.line(name))

    frames_dir = stage / "frames"
    (frames_dir / "masks").mkdir(parents=True)
    for name, img, mask in demo_frames(ck.cfg.input_size):
        Image.fromarray(img).save(frames_dir / f"{name}.png")
        if mask is not None:
            Image.fromarray(mask).save(frames_dir / "masks" / f"{name}_mask.png")
    g = golden(stage / GRAPH, frames_dir, meta)
    (stage / "golden.json").write_text(json.dumps(g, indent=1) + "\n")
    report = {
        "command": "make demo-model",
        "category": CATEGORY, "seed": SEED, "preset": PRESET,
        "test_split": {"good": results["float (Keras)"].n_good, "defective": results["float (Keras)"].n_defect},
        "results": {n: {"image_auroc": round(r.image_auroc, 4), "pixel_auroc": round(r.pixel_auroc, 4)} for n, r in results.items()},
        "demo_frames": {"total": len(g["frames"]), "rejected": sum(f["reject"] for f in g["frames"]),
                        "missed": [f["file"] for f in g["frames"] if f["defective"] and not f["reject"]],
                        "false_rejects": [f["file"] for f in g["frames"] if not f["defective"] and f["reject"]]},
    }
    (stage / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage.rename(out)
    log.info("demo written to %s", out)

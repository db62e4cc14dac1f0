"""`python -m adtr compare`: presets side by side on real-texture and generated categories.

Each preset trains on each category as shipped (its own epochs); the float model is
evaluated, and with --int8 its exported int8 graph too (TF 2.15's interpreter, which
gives the daemon's maps: tests/test_real_textures.py). The simple baselines ADTR must
beat, PaDiM and a nearest-neighbour memory (baselines.py), are fitted on all four
stages of the same backbone on the same training images. Prints Markdown tables (image / pixel
AUROC, and image AUROC per defect kind so that thin defects show), as in the README's
"Backbones on real surfaces" and "Detection on real surfaces".
"""

from __future__ import annotations

import logging
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import baselines, checkpoint, evaluate, export, synth, textures, train
from .config import preset
from .data import Dataset
from .model import ADTR

log = logging.getLogger("adtr.compare")


@dataclass(frozen=True)
class Cell:
    float_: evaluate.Result
    int8: evaluate.Result | None
    seconds: float
    # The baselines on the same backbone's four stages (float): PaDiM and the nearest-neighbour memory.
    padim: evaluate.Result | None = None
    nn: evaluate.Result | None = None

    def results(self) -> dict[str, evaluate.Result]:
        """The cell's results by row name (those measured)."""
        named = {"float": self.float_, "int8": self.int8, "PaDiM": self.padim, "nearest neighbour": self.nn}
        return {k: v for k, v in named.items() if v is not None}


def make_data(root: Path, categories: Sequence[str], seed: int, n_train: int) -> dict[str, Dataset]:
    """Real-texture categories (textures.CATEGORIES) and generated ones (synth.CATEGORIES)."""
    out = {}
    for c in categories:
        if c in textures.CATEGORIES:
            textures.write_category(root, synth.SynthSpec(c, 224, n_train, 20, 6, seed))
        elif c in synth.CATEGORIES:
            synth.write_category(root, synth.SynthSpec(c, 224, n_train, 20, 8, seed))
        else:
            raise ValueError(f"unknown category {c!r} (choose from {', '.join(textures.CATEGORIES + tuple(synth.CATEGORIES))})")
        out[c] = Dataset(root / c)
    return out


def measure(root: Path, name: str, seed: int, int8: bool, epochs: int | None = None,
            keep: Path | None = None) -> Cell:
    """Trains preset `name` on the category at `root`, evaluates the float model and,
    with int8, its exported graph; keep names a folder for the checkpoint and the graph
    (`<preset>-<category>/` and `<preset>-<category>.tflite`). Runs in a worker process."""
    ds = Dataset(root)
    p = preset(name)
    t0 = time.monotonic()
    ck = train.train(p.model.replace(seed=seed), p.train, ds, epochs=epochs)
    secs = time.monotonic() - t0
    split = ds.test(ck.cfg.input_size)
    test_feats = ck.model.features(split.images)
    fl = evaluate.evaluate_maps(ck.model.maps_from_features(test_feats), split, ck.cfg.pool_kernel)
    # The baselines, on the images the model trained on (not the held-out ones), take all
    # four stages of the same backbone at stride 16: as their papers take them, and their
    # best measured input here (PaDiM 0.921 mean image AUROC against 0.895 on blocks 2b+3b:
    # README), whatever the preset's own stages and grid.
    held = set(ck.heldout)
    good_images = ds.train(ck.cfg.input_size)[[str(q.resolve()) not in held and str(q) not in held for q in ds.train_paths()]]
    four = ADTR(ck.cfg.replace(stages=(1, 2, 3, 4), stride=16, reconstructor="memory", memory_size=1), ck.backbone_weights)
    four.fit_feature_norms(good_images)
    good, test4 = four.features(good_images), four.features(split.images)
    base = {name: evaluate.evaluate_maps(det.fit(good).maps(test4), split, ck.cfg.pool_kernel)
            for name, det in (("padim", baselines.PaDiM()), ("nn", baselines.NearestNeighbour(seed=seed)))}
    q = None
    if int8:
        with tempfile.TemporaryDirectory() as d:
            g = (keep if keep is not None else Path(d)) / f"{name}-{root.name}.tflite"
            export.export_tflite(ck, g, ds.train(ck.cfg.input_size)[:64], f"compare-{name}-{root.name}")
            maps = evaluate.graph_maps(evaluate.TFLiteRunner(g), split.images)
            q = evaluate.evaluate_maps(maps, split, ck.cfg.pool_kernel)
    if keep is not None:
        checkpoint.save(ck, keep / f"{name}-{root.name}")
    return Cell(fl, q, secs, base["padim"], base["nn"])


def run(data: dict[str, Dataset], presets: Sequence[str], int8: bool | Sequence[str], seed: int,
        jobs: int = 1, epochs: int | None = None, keep: Path | None = None) -> dict[tuple[str, str], Cell]:
    """Every preset on every category, `jobs` cells at a time, each in its own process
    (a training keeps about one core busy, so two on two cores take little more than
    one). int8 is a flag for every preset or the presets to export; epochs overrides
    the presets' own."""
    exporting = set(presets) if int8 is True else set(int8 or ())
    order = [(name, c) for name in presets for c in data]
    cells: dict[tuple[str, str], Cell] = {}
    ctx = multiprocessing.get_context("spawn")  # TensorFlow does not survive fork
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=ctx) as pool:
        futures = {key: pool.submit(measure, data[key[1]].root, key[0], seed, key[0] in exporting, epochs, keep)
                   for key in order}
        for key in order:
            cells[key] = cell = futures[key].result()
            name, c = key
            log.info("%s", cell.float_.line(f"{name} {c} float ({cell.seconds:.0f} s)"))
            for row, r in cell.results().items():
                if row != "float":
                    log.info("%s", r.line(f"{name} {c} {row}"))
    return cells


ROWS: tuple[str, ...] = ("float", "int8", "PaDiM", "nearest neighbour")


def table(cells: dict[tuple[str, str], Cell], presets: Sequence[str], categories: Sequence[str]) -> str:
    """Image / pixel AUROC: each preset's float model and int8 graph, and the baselines
    on its backbone's four stages, per category and as means over real and generated categories."""
    def fmt(r: evaluate.Result | None) -> str:
        return "-" if r is None else f"{r.image_auroc:.3f} / {r.pixel_auroc:.3f}"

    cols = [(p, row) for p in presets for row in ROWS]
    lines = ["| category | " + " | ".join(f"{p} {row}" if row in ("float", "int8") else f"{row} ({p} backbone)" for p, row in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for c in categories:
        lines.append(f"| {c} | " + " | ".join(fmt(cells[p, c].results().get(row)) for p, row in cols) + " |")
    for group, members in (("real textures", textures.CATEGORIES), ("generated", tuple(synth.CATEGORIES))):
        got = [c for c in categories if c in members]
        if not got:
            continue
        row_cells = []
        for p, row in cols:
            rs = [cells[p, c].results().get(row) for c in got]
            if any(r is None for r in rs):
                row_cells.append("-")
            else:
                row_cells.append(f"{sum(r.image_auroc for r in rs) / len(rs):.3f} / {sum(r.pixel_auroc for r in rs) / len(rs):.3f}")  # type: ignore[union-attr]
        lines.append(f"| mean, {group} | " + " | ".join(row_cells) + " |")
    secs = ", ".join(f"{p} {sum(cells[p, c].seconds for c in categories) / len(categories):.0f} s" for p in presets)
    lines.append(f"\nImage / pixel AUROC. Training time per category: {secs}.")
    return "\n".join(lines)


def kinds_table(cells: dict[tuple[str, str], Cell], presets: Sequence[str], categories: Sequence[str]) -> str:
    """Image AUROC of each defect kind against the good images, per category and row."""
    kinds = sorted({k for cell in cells.values() for k in cell.float_.per_kind})
    lines = ["| category | detector | " + " | ".join(kinds) + " |", "|---|---|" + "---|" * len(kinds)]
    for c in categories:
        for p in presets:
            for row, r in cells[p, c].results().items():
                name = f"{p} {row}" if row in ("float", "int8") else f"{row} ({p} backbone)"
                lines.append(f"| {c} | {name} | " + " | ".join(f"{r.per_kind[k]:.3f}" if k in r.per_kind else "-" for k in kinds) + " |")
    return "\n".join(lines)

"""Issue 11's acceptance on real surfaces: the default `lite0` preset (ImageNet
EfficientNet-Lite0 features) against the random-feature control (`tiny`), both trained
here on photographs of real materials (gimp-data's texture patterns, textures.py) with
defects of kinds synth.py never makes.

(b) lite0's image AUROC is at least 0.9 averaged over the categories, none below 0.8,
    and at least 0.15 above tiny's on the same images;
(c) int8 within 0.02 of float's image and pixel AUROC on every category, either way
    (exact.py's bias correction took out the shift that had made int8 score up to 0.027
    higher than float), and so for the mean over the categories;
(d) on every category, the daemon's TFLite 2.9 C library gives the Python
    interpreter's int8 map, 0 steps apart, on every test image.

Since issue 27 the default `lite0` preset is the nearest-neighbour head (nothing to
train; config.py says why), and the test also holds it against PaDiM and the plain
nearest-neighbour memory (test_the_shipped_recipe_beats_the_baselines).

Both presets train with the lite0-v1 (ADTR) preset's epochs (60; tiny's own 150 would add five
minutes to `make test`, and `python -m adtr compare` gives tiny as shipped); the table
printed is the README's.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from adtr import compare, evaluate, textures
from adtr.config import preset
from adtr.data import Dataset
from adtr.tflite_c import CInterpreter, default_library

SEED = 0
N_TRAIN = 60  # good images per category (10 % of them held out for the threshold)
# 60 good and 60 defective test images per category (a difference of one good/defective
# pair is 1/3600 of image AUROC): with 20 + 24, before exact.py corrected its biases,
# int8 scored 0.027 above float on marble, granite and burlap, a shift that stayed on
# larger test sets, not noise.
N_TEST_GOOD = 60
N_TEST_DEFECT = 15  # per defect kind: crack, burn, smear, fibre, scratch
D_EVERY = 3  # (d) compares C and Python on every third test image: 40 per category
# Trainings at a time: one keeps about one core busy. On this project's 2-core machines
# two at a time took 22 minutes for the 10 trainings and 5 exports, where one after the
# other took 25 for the trainings and 2.7 more per export.
JOBS = max(1, min(2, os.cpu_count() or 1))


@pytest.fixture(scope="module")
def texture_root(gimp_data: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("textures")
    textures.write_all(root, 224, N_TRAIN, N_TEST_GOOD, N_TEST_DEFECT, SEED)
    return root


class Measured:
    def __init__(self, cells: dict[tuple[str, str], compare.Cell], graphs: Path) -> None:
        self.cells = cells
        self.graphs = graphs  # lite0-<category>.tflite (and its .json) for each category


@pytest.fixture(scope="module")
def measured(texture_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Measured:
    """Both presets on every category, JOBS trainings at a time (each in its own
    process: one keeps about one core busy); lite0's int8 graphs exported and kept."""
    data = {c: Dataset(texture_root / c) for c in textures.CATEGORIES}
    keep = tmp_path_factory.mktemp("graphs")
    cells = compare.run(data, ("lite0", "tiny"), ("lite0",), SEED, jobs=JOBS, epochs=preset("lite0-v1").train.epochs, keep=keep)
    for (name, c), cell in cells.items():
        print(cell.float_.line(f"{name} {c} float ({cell.seconds:.0f} s)"))
        if cell.int8 is not None:
            print(cell.int8.line(f"{name} {c} int8"))
    return Measured(cells, keep)


def test_b_pretrained_features_detect_defects_on_real_textures(measured: Measured) -> None:
    cats = textures.CATEGORIES
    res = {(n, c): measured.cells[n, c].float_ for n in ("lite0", "tiny") for c in cats}
    img = {n: np.array([res[n, c].image_auroc for c in cats]) for n in ("lite0", "tiny")}
    pix = {n: np.array([res[n, c].pixel_auroc for c in cats]) for n in ("lite0", "tiny")}
    q = [measured.cells["lite0", c].int8 for c in cats]
    print("| preset | " + " | ".join(cats) + " | mean |")
    print("|---|" + "---|" * (len(cats) + 1))
    for n in ("lite0", "tiny"):
        cells = [f"{i:.3f} / {p:.3f}" for i, p in zip(img[n], pix[n])]
        print(f"| `{n}`, float (image / pixel AUROC) | " + " | ".join(cells) + f" | {img[n].mean():.3f} / {pix[n].mean():.3f} |")
        if n == "lite0":
            qi, qp = np.array([r.image_auroc for r in q]), np.array([r.pixel_auroc for r in q])
            cells = [f"{i:.3f} / {p:.3f}" for i, p in zip(qi, qp)]
            print("| `lite0`, int8 | " + " | ".join(cells) + f" | {qi.mean():.3f} / {qp.mean():.3f} |")
    for n in ("lite0", "tiny"):
        kinds = sorted(res[n, cats[0]].per_kind)
        per = {k: np.mean([res[n, c].per_kind[k] for c in cats]) for k in kinds}
        print(f"{n}: mean image AUROC per defect kind: " + ", ".join(f"{k} {v:.3f}" for k, v in per.items()))
        print(f"{n}: training {np.mean([measured.cells[n, c].seconds for c in cats]):.0f} s per category")
    assert img["lite0"].mean() >= 0.9
    assert img["lite0"].min() >= 0.8, dict(zip(cats, img["lite0"]))
    assert img["lite0"].mean() >= img["tiny"].mean() + 0.15


def test_the_shipped_recipe_beats_the_baselines(measured: Measured) -> None:
    """Issue 27: the default preset's int8 graph against PaDiM and the nearest-neighbour
    memory on all four stages of the same backbone (compare.measure). On average it
    must be above both, and on every category above both less 0.003 (about 13 of the
    4500 good/defective pairs: another CPU's float rounding in the features moves the
    int8 graph that much; measured with the density weight, wood's int8 0.985 against
    PaDiM's 0.984 is the closest, and without it wood trailed at 0.979). Thin defects,
    the issue's bar: mean crack and scratch AUROC at least 0.9 (measured: 0.989 and
    0.971 int8)."""
    cats = textures.CATEGORIES
    q = {c: measured.cells["lite0", c].int8 for c in cats}
    base = {c: measured.cells["lite0", c] for c in cats}
    for c in cats:
        r = q[c]
        assert r is not None
        print(f"{c}: int8 {r.image_auroc:.3f}, PaDiM {base[c].padim.image_auroc:.3f}, NN {base[c].nn.image_auroc:.3f}")  # type: ignore[union-attr]
        assert r.image_auroc >= base[c].padim.image_auroc - 0.003 and r.image_auroc >= base[c].nn.image_auroc - 0.003  # type: ignore[union-attr]
    mean = float(np.mean([q[c].image_auroc for c in cats]))  # type: ignore[union-attr]
    assert mean > float(np.mean([base[c].padim.image_auroc for c in cats]))  # type: ignore[union-attr]
    assert mean > float(np.mean([base[c].nn.image_auroc for c in cats]))  # type: ignore[union-attr]
    for kind in ("crack", "scratch"):
        assert float(np.mean([q[c].per_kind[kind] for c in cats])) >= 0.9, kind  # type: ignore[union-attr]


@pytest.mark.parametrize("category", textures.CATEGORIES)
def test_c_int8_lite0_graph_keeps_the_floats_auroc(measured: Measured, category: str) -> None:
    """int8 within 0.02 of float's image and pixel AUROC on every category, either way:
    the int8 graph is to compute the float model's function, not a better or worse one
    (one good/defective pair is 0.0003 of image AUROC here)."""
    cell = measured.cells["lite0", category]
    assert cell.int8 is not None
    d_img = cell.int8.image_auroc - cell.float_.image_auroc
    d_pix = cell.int8.pixel_auroc - cell.float_.pixel_auroc
    print(f"lite0 {category}: int8 - float = {d_img:+.4f} image, {d_pix:+.4f} pixel AUROC")
    assert abs(d_img) <= 0.02 and abs(d_pix) <= 0.02


def test_c_int8_lite0_mean_auroc_is_the_floats(measured: Measured) -> None:
    """Over the categories, int8's mean image and pixel AUROC within 0.02 of float's, either way."""
    fl = [measured.cells["lite0", c].float_ for c in textures.CATEGORIES]
    q = [measured.cells["lite0", c].int8 for c in textures.CATEGORIES]
    assert all(r is not None for r in q)
    for attr in ("image_auroc", "pixel_auroc"):
        f_mean = float(np.mean([getattr(r, attr) for r in fl]))
        q_mean = float(np.mean([getattr(r, attr) for r in q]))
        print(f"lite0 mean {attr}: float {f_mean:.4f}, int8 {q_mean:.4f}")
        assert abs(q_mean - f_mean) <= 0.02


@pytest.mark.parametrize("category", textures.CATEGORIES)
def test_d_c_library_maps_equal_pythons_for_the_lite0_graph(measured: Measured, texture_root: Path, category: str) -> None:
    """The backbone runs inside the int8 graph; exact.py's rounding rules cover its
    convolutions, depthwise convolutions and residual sums as they do the transformer's."""
    if not default_library().is_file():
        pytest.fail(f"{default_library()}: missing; `make deps` installs it")
    from tensorflow.lite.tools import flatbuffer_utils as fu

    from adtr import exact

    graph = measured.graphs / f"lite0-{category}.tflite"
    exact.check(exact._Graph(fu.read_model(str(graph))))
    m = fu.read_model(str(graph))
    names = {fu.opcode_to_name(m, op.opcodeIndex) for op in m.subgraphs[0].operators}
    assert "DEPTHWISE_CONV_2D" in names  # the backbone is in the graph
    assert not {"ADD", "SUB", "MUL", "MEAN", "RSQRT"} & names, sorted(names)
    split = Dataset(texture_root / category).test(224)
    py = evaluate.TFLiteRunner(graph)
    worst = 0
    with CInterpreter(graph) as c:
        for im in split.images[::D_EVERY]:
            a, b = c.run(im)[0].astype(np.int32), py.raw(im).astype(np.int32)
            worst = max(worst, int(np.abs(a - b).max()))
    print(f"lite0 {category} graph: max |C 2.9 - Python| = {worst} quantisation steps over {len(split.images[::D_EVERY])} images")
    assert worst == 0

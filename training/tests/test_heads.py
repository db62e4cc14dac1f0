"""The heads `train` builds besides plain ADTR, exported to the same int8 graph and
metadata, so the daemon runs them without knowing: the nearest-neighbour (memory) head,
and ADTR with UniAD's neighbour mask and layer-wise queries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from adtr import checkpoint, evaluate, exact, export, train
from adtr.config import TrainConfig, preset
from adtr.data import Dataset
from adtr.model import Memory
from adtr.tflite_c import CInterpreter, default_library


def test_each_token_is_reconstructed_as_its_nearest_memory_token() -> None:
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((3, 4, 4, 8)).astype(np.float32)
    mem = Memory(20)
    mem(np.zeros((1, 4, 4, 8), np.float32))  # builds the table
    mem.fit(feats, seed=0)
    table = mem.memory.numpy()
    x = rng.standard_normal((2, 4, 4, 8)).astype(np.float32)
    got = mem(x).numpy()
    d = ((x.reshape(-1, 1, 8) - table[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(got.reshape(-1, 8), table[d.argmin(1)])
    # a kept token is its own reconstruction: distance 0
    np.testing.assert_array_equal(mem(table[None, None, :4]).numpy(), table[None, None, :4])


def test_the_density_weight_scales_the_distance_to_the_nearest_token() -> None:
    """With memory_density_k the map is ||f - m*|| times m*'s density weight, the same
    in the layer (the graph) and in the numpy twin that `compare` measures."""
    from adtr import baselines
    from adtr.config import ModelConfig
    from adtr.model import build_reconstructor

    rng = np.random.default_rng(1)
    feats = rng.standard_normal((4, 4, 4, 8)).astype(np.float32)
    cfg = ModelConfig(backbone="random-cnn", input_size=64, reconstructor="memory", memory_size=24, memory_density_k=3)
    rec = build_reconstructor(cfg, 8)
    mem = rec.get_layer("memory")
    mem.fit(feats, seed=0)
    table, w = mem.memory.numpy(), mem.density.numpy()[:, 0]
    np.testing.assert_allclose(w, baselines.density_weights(table, 3), rtol=1e-6)
    assert w.min() < 0.95 and w.max() > 1.05  # random tokens: densities differ
    x = rng.standard_normal((2, 4, 4, 8)).astype(np.float32)
    got, wt = (t.numpy() for t in rec(x))
    j = ((x.reshape(-1, 1, 8) - table[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(got.reshape(-1, 8), table[j])
    np.testing.assert_array_equal(wt.reshape(-1), w[j])
    twin = baselines.NearestNeighbour(24 / 64, 0, density_k=3).fit(feats)
    np.testing.assert_allclose(twin.memory, table)
    want = np.sqrt(((x.reshape(-1, 8) - table[j]) ** 2).sum(-1)) * w[j]
    np.testing.assert_allclose(twin.maps(x).reshape(-1), want, rtol=1e-5)


@pytest.mark.parametrize(
    "tokens,want",
    [
        # two tight pairs far apart: every token's nearest other token is as close
        (np.array([[0, 0], [0, 1], [10, 0], [10, 1]], np.float32), [1, 1, 1, 1]),
        # a dense pair and a sparse pair: the dense tokens weigh more, mean(r)/r_m
        (np.array([[0, 0], [0, 1], [10, 0], [10, 3]], np.float32), [2, 2, 2 / 3, 2 / 3]),
        # copies count as one token (a memory filled by repeating): the same weights
        (np.array([[0, 0], [0, 0], [0, 1], [10, 0], [10, 3], [10, 3]], np.float32), [2, 2, 2, 2 / 3, 2 / 3, 2 / 3]),
        # one distinct token: nothing to compare, every weight 1
        (np.zeros((5, 3), np.float32), [1] * 5),
        # one token
        (np.ones((1, 3), np.float32), [1]),
    ],
)
def test_density_weights(tokens: np.ndarray, want: list[float]) -> None:
    from adtr import baselines

    np.testing.assert_allclose(baselines.density_weights(tokens, 1), want, rtol=1e-5)


def test_fewer_tokens_than_the_memory_fill_it_by_repeating() -> None:
    feats = np.arange(2 * 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 2, 3)
    mem = Memory(20)
    mem(np.zeros((1, 2, 2, 3), np.float32))
    mem.fit(feats, seed=0)
    assert {tuple(r) for r in mem.memory.numpy()} == {tuple(r) for r in feats.reshape(-1, 3)}
    with pytest.raises(ValueError, match="no good tokens"):
        mem.fit(feats[:0], seed=0)


@pytest.fixture(scope="module")
def memory_graph(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> tuple[checkpoint.Checkpoint, Path]:
    p = preset("tiny")
    # the shipped head: the map weighted by the nearest token's density (memory_density_k)
    ck = train.train(p.model.replace(reconstructor="memory", memory_size=512, memory_density_k=9, seed=1), p.train, dataset)
    out = tmp_path_factory.mktemp("memory") / "m.tflite"
    export.export_tflite(ck, out, dataset.train(ck.cfg.input_size)[:32], "test-memory")
    return ck, out


def _exact_on_the_c_library(graph: Path, images: np.ndarray, ops: set[str]) -> evaluate.TFLiteRunner:
    """exact.check passes, the graph has `ops` and none of the int8 ops that round
    differently in TFLite 2.9, and the daemon's C library gives the Python
    interpreter's map at 0 steps on every image."""
    if not default_library().is_file():
        pytest.fail(f"{default_library()}: missing; `make deps` installs it")
    from tensorflow.lite.tools import flatbuffer_utils as fu

    m = fu.read_model(str(graph))
    names = {fu.opcode_to_name(m, op.opcodeIndex) for op in m.subgraphs[0].operators}
    assert ops <= names and not {"ADD", "SUB", "MUL", "MEAN", "RSQRT"} & names, sorted(names)
    exact.check(exact._Graph(m))
    py = evaluate.TFLiteRunner(graph)
    worst = 0
    with CInterpreter(graph) as c:
        for im in images:
            worst = max(worst, int(np.abs(c.run(im)[0].astype(np.int32) - py.raw(im).astype(np.int32)).max()))
    assert worst == 0
    return py


def test_memory_head_exports_to_the_exact_int8_graph(memory_graph, split) -> None:  # type: ignore[no-untyped-def]
    """The same rules as ADTR's graph (C 2.9 = Python at 0 steps), int8 within 0.02 of
    float, and the metadata says which head made it."""
    ck, graph = memory_graph
    py = _exact_on_the_c_library(graph, split.images, {"ARG_MIN", "GATHER", "BATCH_MATMUL"})
    fl = evaluate.evaluate_maps(ck.model.maps(split.images), split, ck.cfg.pool_kernel)
    q = evaluate.evaluate_maps(evaluate.graph_maps(py, split.images), split, ck.cfg.pool_kernel)
    print(fl.line("memory head float"))
    print(q.line("memory head int8"))
    assert abs(q.image_auroc - fl.image_auroc) <= 0.02 and abs(q.pixel_auroc - fl.pixel_auroc) <= 0.02
    meta = json.loads(export.metadata_path(graph).read_text())
    assert meta["model"]["reconstructor"] == "memory" and meta["training"]["history"][0]["stage"] == "memory"


def test_adtr_plus_refuses_the_memory_head(memory_graph, dataset: Dataset) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="nothing to fine-tune"):
        train.finetune_plus(memory_graph[0], dataset, synthetic=2)


def test_neighbour_mask_and_layerwise_queries_export_exactly(dataset: Dataset, split, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """UniAD's neighbour mask (gathered windows) and layer-wise queries lower to the
    same exact int8 graph: C 2.9 = Python at 0 steps, and the int8 map stays close to
    the float model's (a few epochs: the graph is under test, not the detector)."""
    p = preset("tiny")
    cfg = p.model.replace(neighbor_mask=7, layerwise_query=True, stages=(2, 3), seed=1)
    ck = train.train(cfg, TrainConfig(epochs=3, lr=1e-3, batch=8, lr_drop_epoch=2, jitter=20.0, clip_norm=0.1), dataset)
    graph = tmp_path / "uniad.tflite"
    export.export_tflite(ck, graph, dataset.train(cfg.input_size)[:16], "test-uniad")
    py = _exact_on_the_c_library(graph, split.images[::2], {"GATHER", "BATCH_MATMUL", "SOFTMAX"})
    fl = ck.model.maps(split.images[::2])
    q = evaluate.graph_maps(py, split.images[::2])
    rel = float(np.abs(q - fl).mean() / fl.mean())
    print(f"neighbour mask + layer-wise queries: mean |int8 - float| = {rel:.3%} of the mean map")
    assert rel < 0.03  # measured 1.0 % on a 3-epoch tiny model


def test_memory_head_exports_to_onnx(memory_graph, split, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The float ONNX graph (ONNX Runtime engine) computes the float model's map: ArgMin
    and Gather convert as they are."""
    ck, _ = memory_graph
    export.export_onnx(ck, tmp_path / "m.onnx", "test-memory")
    got = evaluate.graph_maps(evaluate.ONNXRunner(tmp_path / "m.onnx"), split.images[:6])
    np.testing.assert_allclose(got, ck.model.maps(split.images[:6]), rtol=1e-3, atol=1e-3)


@pytest.fixture(scope="module")
def memory_checkpoint(memory_graph, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    return checkpoint.save(memory_graph[0], tmp_path_factory.mktemp("memck") / "mem")


@pytest.mark.parametrize(
    "change",
    [
        {"pool_kernel": 8},  # the weights fit, the image score would be another one
        {"feature_clip": 2.0},  # the memory was fitted on features clipped at 4
        {"memory_size": 256},  # shape mismatch too, but the edit is named first
        {"memory_density_k": 3},  # the density weights were fitted with k = 9
        {"memory_density_k": 0},  # the same, and the weights table would be left over
        {"feature_clip": 4},  # not an edit: a JSON tool re-saving 4.0 as 4 (loads)
    ],
)
def test_an_edited_configuration_is_refused(memory_checkpoint: Path, change: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """A checkpoint's weights belong to the configuration they were fitted with: an
    edited "model" section the weights still fit by shape (a memory fitted at stride 8
    loaded at 16, found by a new user's trial) must not load and export silently."""
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(memory_checkpoint, ck)
    meta = json.loads((ck / "meta.json").read_text())
    same = all(meta["model"][k] == v for k, v in change.items())
    meta["model"].update(change)
    (ck / "meta.json").write_text(json.dumps(meta))
    if same:
        assert checkpoint.load(ck).cfg == checkpoint.load(memory_checkpoint).cfg
        return
    with pytest.raises(checkpoint.CheckpointError, match="edited after training"):
        checkpoint.load(ck)
    checkpoint.load(memory_checkpoint)  # the unedited one loads


@pytest.mark.parametrize(
    "edit, problem",
    [
        # every weight zero: the map would be all zero
        (lambda w: np.zeros_like(w), "density weights are not the ones its memory gives"),
        # every second token's weight zero: defects near them would vanish (eval 0.93 image, 0.64 pixel, silently)
        (lambda w: np.where(np.arange(len(w))[:, None] % 2 == 0, 0, w), "density weights are not the ones its memory gives"),
        # negative: the toolkit exported a negative threshold that the daemon refused
        (lambda w: -w, "density weights are not the ones its memory gives"),
        # huge, and within the bounds but not the memory's
        (lambda w: np.full_like(w, 1e30), "density weights are not the ones its memory gives"),
        (lambda w: np.full_like(w, 2.0), "density weights are not the ones its memory gives"),
    ],
)
def test_density_weights_that_are_not_the_memorys_are_refused(memory_graph, tmp_path: Path, edit, problem: str) -> None:  # type: ignore[no-untyped-def]
    ck = memory_graph[0]
    mem = ck.model.reconstructor.get_layer("memory")
    kept = mem.density.numpy()
    mem.density.assign(edit(kept))
    try:
        path = checkpoint.save(ck, tmp_path / "ck")
    finally:
        mem.density.assign(kept)
    with pytest.raises(checkpoint.CheckpointError, match=f"reconstructor.h5: the memory's {problem}") as e:
        checkpoint.load(path)
    assert "\n" not in str(e.value)


def _edit_h5(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    import h5py

    with h5py.File(path, "r+") as f:
        names: list[str] = []
        f.visit(names.append)
        edit(f, names)


@pytest.mark.parametrize(
    "edit, problem",
    [
        # the memory table scaled by 2: the density weights do not change, and it loaded
        # and scored 0.81 instead of 1.0 (a new user's trial)
        ("scale the memory", "not the weights this checkpoint was saved with"),
        # a missing dataset (an h5py KeyError traceback before)
        ("delete the density table", "not the weights this checkpoint was saved with"),
        # another checkpoint's reconstructor.h5 of the same preset: it loaded (0.74)
        ("another checkpoint's file", "not the weights this checkpoint was saved with"),
        # a directory (or FIFO, device) was called "missing"
        ("a directory in its place", "not a regular file"),
        # deleting the hash does not switch the check off
        ("the hash deleted", "weights_sha256: want the sha256"),
        # a checkpoint written before the hashes: the loader's own error, in one line
        ("an older checkpoint (format /2) with a table deleted", "weights do not fit the configuration or the file is damaged"),
    ],
)
def test_weight_files_belong_to_their_checkpoint(memory_checkpoint: Path, memory_graph, tmp_path: Path, edit: str, problem: str) -> None:  # type: ignore[no-untyped-def]
    """Checkpoints (format /3) carry the sha256 of both weight files: an edited table, a
    file from another checkpoint or a missing dataset is one line naming the file."""
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(memory_checkpoint, ck)
    rec = ck / "reconstructor.h5"
    meta = json.loads((ck / "meta.json").read_text())
    assert meta["format"] == "adtr-checkpoint/3"

    def scale(f, names):  # type: ignore[no-untyped-def]
        d = f[next(x for x in names if x.endswith("memory:0"))]
        d[...] = d[...] * 2

    def delete(f, names):  # type: ignore[no-untyped-def]
        del f[next(x for x in names if x.endswith("density:0"))]

    if edit == "scale the memory":
        _edit_h5(rec, scale)
    elif edit == "delete the density table":
        _edit_h5(rec, delete)
    elif edit == "another checkpoint's file":
        mem = memory_graph[0].model.reconstructor.get_layer("memory")
        kept = [w.numpy() for w in mem.weights]
        mem.memory.assign(kept[0] + 0.5)
        try:
            other = checkpoint.save(memory_graph[0], tmp_path / "other")
        finally:
            for w, v in zip(mem.weights, kept):
                w.assign(v)
        shutil.copy(other / "reconstructor.h5", rec)
    elif edit == "a directory in its place":
        rec.unlink()
        rec.mkdir()
    elif edit == "the hash deleted":
        meta.pop("weights_sha256")
    else:
        _edit_h5(rec, delete)
        meta.pop("weights_sha256")
        meta["format"] = "adtr-checkpoint/2"
    (ck / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(checkpoint.CheckpointError, match=problem) as e:
        checkpoint.load(ck)
    assert "\n" not in str(e.value)


def test_density_weights_at_their_bounds_are_warned_of(dataset: Dataset, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Nearly alike good tokens (a new user's 10 flat grey images on lite0: 7520 of 8192
    weights at the top bound, and a threshold far from the float graph's) say little
    about density: train says so instead of fitting silently."""
    from adtr import baselines

    real = baselines.density_weights
    monkeypatch.setattr(baselines, "density_weights", lambda m, k: np.where(np.arange(len(m)) % 2 == 0, 4.0, real(m, k)).astype(np.float32))
    p = preset("tiny")
    with caplog.at_level("WARNING", logger="adtr.train"):
        train.train(p.model.replace(reconstructor="memory", memory_size=64, memory_density_k=9, seed=1), p.train, dataset)
    assert "32 of 64 density weights sit at their bounds (0.25, 4.0)" in caplog.text


def test_a_checkpoint_written_before_the_density_weight_still_loads(dataset: Dataset, tmp_path: Path) -> None:
    """memory_density_k came after format /2: a memory head saved before it has no such
    key and its hash was taken without it. It loads as density off, unedited."""
    p = preset("tiny")
    ck = train.train(p.model.replace(reconstructor="memory", memory_size=64, seed=1), p.train, dataset)
    path = checkpoint.save(ck, tmp_path / "old")
    meta = json.loads((path / "meta.json").read_text())
    assert meta["model"].pop("memory_density_k") == 0
    (path / "meta.json").write_text(json.dumps(meta))
    got = checkpoint.load(path)
    assert got.cfg.memory_density_k == 0 and got.cfg == ck.cfg


@pytest.mark.parametrize(
    "edit, problem",
    [
        # the hash deleted: it no longer switches the check off (format /2 must carry it)
        (lambda m: m.pop("model_sha256"), "model_sha256 missing"),
        # a checkpoint written before the hash (format /1) still loads, unchecked
        (lambda m: (m.pop("model_sha256"), m.update(format="adtr-checkpoint/1")), None),
        # export reads these later; each was a bare TypeError there
        (lambda m: m.update(heldout="good/000.png"), "heldout: want a list of image paths"),
        (lambda m: m.update(heldout=[1, 2]), "heldout: want a list of image paths"),
        (lambda m: m.update(heldout=[""]), "heldout: want a list of image paths"),
        (lambda m: m.update(data=[]), "data: want a JSON object"),
        (lambda m: m.update(history={}), "history: want a JSON list"),
        (lambda m: m.update(backbone_weights=3), "backbone_weights: want a path or null"),
        # another tool's file
        (lambda m: m.update(format="adtr-checkpoint/9"), "format is not adtr-checkpoint/3"),
        # a JSON tool re-saving whole numbers as floats: the same configuration (the hash
        # reads them alike); TF's shapes had raised a TypeError traceback
        (lambda m: m["model"].update({k: float(m["model"][k]) for k in ("stride", "input_size", "memory_size")},
                                      stages=[float(v) for v in m["model"]["stages"]]), None),
        (lambda m: m["model"].update(stride=8.5), "stride 8.5: want a whole number"),
        # NaN is not JSON (the daemon's decoder refuses it): it reached the graph's metadata
        (lambda m: m["data"].update(n_train=float("nan")), "malformed JSON (NaN is not JSON"),
        (lambda m: m["history"].append({"seconds": float("inf")}), "malformed JSON (Infinity is not JSON"),
        # the mirror: floats re-saved as ints (JavaScript writes 4.0 as 4); --plus had
        # called it "another configuration (differs in )"
        (lambda m: m["model"].update(feature_clip=int(m["model"]["feature_clip"]), dropout=int(m["model"]["dropout"])), None),
        (lambda m: m["train"].update(batch=float(m["train"]["batch"])), None),
        # the train section: a traceback or a silent acceptance in --plus before
        (lambda m: m["train"].update(batch=0), "batch 0: want at least 1"),
        (lambda m: m["train"].update(lr="0.002"), "lr '0.002': want a number"),
        (lambda m: m["train"].update(plus_topk=True), "plus_topk True: want a whole number"),
        (lambda m: m.update(train=[]), "train: want an object"),
        # the wrong cause named before
        (lambda m: m.update(model=[]), "model: want the model configuration object, got list"),
        (lambda m: m.update(model_sha256=m["model_sha256"].upper()), "want 64 lowercase hex digits"),
        # a NUL in a path was "embedded null byte" after the conversion
        (lambda m: m["heldout"].append("good/000.png\x00x"), "heldout: want a list of image paths"),
    ],
)
def test_checkpoint_fields_are_checked_at_load(memory_checkpoint: Path, edit, problem: str | None, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(memory_checkpoint, ck)
    meta = json.loads((ck / "meta.json").read_text())
    edit(meta)
    (ck / "meta.json").write_text(json.dumps(meta))
    if problem is None:
        a, b = checkpoint.load(ck), checkpoint.load(memory_checkpoint)
        assert a.cfg.fingerprint() == b.cfg.fingerprint() and a.train == b.train
        return
    with pytest.raises(checkpoint.CheckpointError) as e:
        checkpoint.load(ck)
    assert str(e.value).startswith(f"{ck / 'meta.json'}: ") and problem in str(e.value) and "\n" not in str(e.value)


def test_a_checkpoint_without_heldout_images_is_refused_before_converting(memory_checkpoint: Path, dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The threshold comes from the held-out images: an empty list was refused only after
    the int8 conversion, naming neither the file nor the key."""
    import shutil

    from adtr import cli

    ck = tmp_path / "ck"
    shutil.copytree(memory_checkpoint, ck)
    meta = json.loads((ck / "meta.json").read_text())
    meta["heldout"] = []
    (ck / "meta.json").write_text(json.dumps(meta))
    out = tmp_path / "out" / "m.tflite"
    code = cli.main(["export", "--checkpoint", str(ck), "--data", str(dataset.root), "--tflite", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"adtr export: {ck / 'meta.json'}: heldout: no held-out good images to set the threshold with (train keeps 10 % of train/good for it)"
    assert not (tmp_path / "out").exists()


def test_heldout_paths_are_absolute(memory_checkpoint: Path) -> None:
    """Export reads the held-out images to set the threshold, from whatever folder it is
    run in: relative paths stored at training found nothing from another folder."""
    held = checkpoint.load(memory_checkpoint).heldout
    assert held and all(Path(p).is_absolute() and Path(p).is_file() for p in held)


@pytest.mark.parametrize(
    "value, word",
    [
        (0.0, "constant"),  # the broken QDQ graph's all-zero map
        (3.5, "constant"),  # any constant decides nothing
        (np.nan, "non-finite"),  # a NaN map would give a NaN threshold
    ],
)
def test_a_graph_whose_map_decides_nothing_is_not_exported(memory_graph, value: float, word: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ck = memory_graph[0]
    g = ck.cfg.grid
    heldout = np.zeros((3, ck.cfg.input_size, ck.cfg.input_size, 3), np.uint8)
    with pytest.raises(ValueError, match=word):
        export.build_metadata(ck, tmp_path / "x.tflite", b"", lambda im: np.full((g, g), value, np.float32), heldout, {}, "v")


def test_weights_that_are_not_finite_are_refused(memory_graph, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One NaN in the memory exported silently with another threshold; a wholly NaN
    memory crashed the converter with a traceback. Both are now refused at load."""
    ck = memory_graph[0]
    mem = ck.model.reconstructor.get_layer("memory")
    kept = mem.memory.numpy()
    bad = kept.copy()
    bad[3, 5] = np.nan
    mem.memory.assign(bad)
    try:
        path = checkpoint.save(ck, tmp_path / "nan")
    finally:
        mem.memory.assign(kept)
    with pytest.raises(checkpoint.CheckpointError, match="reconstructor.h5: .*not finite"):
        checkpoint.load(path)


def test_memory_head_exports_to_qdq_onnx_with_the_head_in_float(memory_graph, dataset: Dataset, split, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--onnx-int8 on the memory head: the backbone in QDQ int8, the head (distance
    table, ArgMin, Gathers, map) in float. Quantised whole, the head had given an
    all-zero map, and export refused it."""
    import onnx

    ck = memory_graph[0]
    out = tmp_path / "m.int8.onnx"
    meta = export.export_onnx(ck, out, "test-memory-qdq", good=dataset.train(ck.cfg.input_size)[:16])
    g = onnx.load(str(out))
    made_by = {o: n for n in g.graph.node for o in n.output}
    argmin = next(n for n in g.graph.node if n.op_type == "ArgMin")
    table = made_by[argmin.input[0]]
    # the distance table's weights are the float memory, not an int8 one dequantised
    assert table.op_type == "Conv" and table.input[1] not in made_by and not any(n.op_type == "DequantizeLinear" for n in made_by.values() if table.input[1] in n.output)
    assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") and any(i in argmin.output for i in n.input) for n in g.graph.node)
    assert sum(n.op_type == "QuantizeLinear" for n in g.graph.node) > 10  # the backbone is int8
    assert "a nearest-neighbour head stays float" in meta["quantisation"]["recipe"]
    fl = ck.model.maps(split.images)
    q = evaluate.graph_maps(evaluate.ONNXRunner(out), split.images)
    rel = float(np.abs(q - fl).mean() / fl.mean())
    a, b = (evaluate.evaluate_maps(m, split, ck.cfg.pool_kernel) for m in (fl, q))
    print(f"memory head QDQ: mean |QDQ - float| = {rel:.2%} of the mean map; image AUROC {a.image_auroc:.3f} -> {b.image_auroc:.3f}")
    assert rel < 0.05 and abs(a.image_auroc - b.image_auroc) <= 0.02  # measured 1.4 % and +0.008 on printed_part

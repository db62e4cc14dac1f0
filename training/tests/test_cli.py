"""Bad input: one line on stderr naming the file and the problem, exit status 2, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adtr import synth
from adtr.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def small_set(root: Path) -> Path:
    return synth.write_category(root, synth.SynthSpec("weave", size=32, n_train=4, n_test_good=1, n_test_defect=1))


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_missing_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "ck"))
    assert code == 2
    assert one_line(err) == f"adtr train: {tmp_path / 'nope'}: dataset folder not found"
    assert not (tmp_path / "ck").exists()


def test_malformed_dataset_names_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cat" / "test").mkdir(parents=True)
    code, err = run(capsys, "train", "--data", str(tmp_path / "cat"), "--out", str(tmp_path / "ck"))
    assert code == 2 and "train/good: missing" in one_line(err)


def test_mixed_image_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = small_set(tmp_path)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(root / "train" / "good" / "999.png")
    code, err = run(capsys, "train", "--data", str(root), "--out", str(tmp_path / "ck"), "--preset", "tiny", "--epochs", "1")
    line = one_line(err)
    assert code == 2 and "999.png: image is 40x40, the others are 32x32" in line
    assert not (tmp_path / "ck").exists()


def test_unreadable_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = small_set(tmp_path)
    (root / "train" / "good" / "000.png").write_bytes(b"\x89PNG truncated")
    code, err = run(capsys, "train", "--data", str(root), "--out", str(tmp_path / "ck"), "--preset", "tiny", "--epochs", "1")
    assert code == 2 and "000.png: not a readable image" in one_line(err)


def test_unknown_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = small_set(tmp_path)
    code, err = run(capsys, "train", "--data", str(root), "--out", str(tmp_path / "ck"), "--preset", "huge")
    assert code == 2 and one_line(err) == "adtr train: unknown preset 'huge' (choose from lite0, lite0-v1, lite0-adtr, paper, tiny)"


def test_ablate_takes_an_adtr_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default preset became the nearest-neighbour head: `ablate` without --preset
    ablates lite0-v1 (ADTR), and a memory preset is one line, not a KeyError traceback."""
    from adtr import ablate
    from adtr.config import preset

    root = small_set(tmp_path)
    code, err = run(capsys, "ablate", "--data", str(root), "--preset", "lite0")
    assert code == 2 and one_line(err) == ("adtr ablate: --preset lite0: ablate compares ADTR's reconstructors, and this preset's head is "
                                           "'memory'; choose an ADTR preset (lite0-v1, lite0-adtr, tiny)")
    assert preset(ablate.DEFAULT_PRESET).model.reconstructor == "transformer"
    for epochs in ("0", "-1"):  # 0 trained the preset's 60 epochs silently; -1 was an IndexError traceback
        code, err = run(capsys, "ablate", "--data", str(root), "--epochs", epochs)
        assert code == 2 and one_line(err) == f"adtr ablate: --epochs {epochs}: want at least 1"


def test_unknown_category(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "synth", "--out", str(tmp_path), "--categories", "wood")
    assert code == 2 and "unknown category 'wood'" in one_line(err)


def test_checkpoint_from_another_configuration(trained: Path, dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    code, err = run(capsys, "train", "--plus", "--from", str(trained), "--preset", "paper", "--synthetic", "4",
                    "--data", str(dataset.root), "--out", str(tmp_path / "plus"))
    line = one_line(err)
    assert code == 2 and f"{trained}: checkpoint is for another configuration" in line and "backbone" in line


def test_not_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "export", "--checkpoint", str(tmp_path), "--data", str(tmp_path), "--tflite", str(tmp_path / "m.tflite"))
    assert code == 2 and one_line(err) == f"adtr export: {tmp_path}: not a checkpoint (no meta.json)"


def test_export_path_exists(trained: Path, dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "m.tflite"
    target.write_bytes(b"precious")
    code, err = run(capsys, "export", "--checkpoint", str(trained), "--data", str(dataset.root), "--tflite", str(target))
    assert code == 2 and one_line(err) == f"adtr export: {target}: already exists (refusing to overwrite; pick another path or remove it)"
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]


def test_train_output_exists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = small_set(tmp_path)
    (tmp_path / "ck").mkdir()
    code, err = run(capsys, "train", "--data", str(root), "--out", str(tmp_path / "ck"))
    assert code == 2 and "ck: already exists" in one_line(err)


@pytest.mark.parametrize("args, problem", [
    (["textures", "--size", "0"], "--size 0: want 16..4096 pixels"),  # was a ZeroDivisionError traceback
    (["synth", "--size", "-5"], "--size -5: want 16..4096 pixels"),  # was numpy's words, not the option's
    (["textures", "--train", "-1"], "--train -1: want 0 or more images"),  # was accepted, writing no train/
    (["synth", "--test-good", "-1"], "--test-good -1: want 0 or more images"),  # likewise
    (["synth", "--test-defect", "-3"], "--test-defect -3: want 0 or more images"),  # likewise
    (["compare", "--train", "-1"], "--train -1: want at least 2"),  # was a late 'train/good: missing'
])
def test_bad_sizes_and_counts(args: list[str], problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    extra = [] if args[0] == "compare" else ["--out", str(out)]
    code, err = run(capsys, *args, *extra)
    assert code == 2 and problem in one_line(err)
    assert not out.exists()


@pytest.mark.parametrize("n", ["0", "-3"])  # [:0] calibrated on nothing; [:-3] on all but three
def test_export_calibration_count(n: str, trained: Path, dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "g.tflite"
    code, err = run(capsys, "export", "--checkpoint", str(trained), "--data", str(dataset.root), "--tflite", str(out), "--calibration", n)
    assert code == 2 and f"--calibration {n}: want at least 1 image" in one_line(err)
    assert not out.exists()


def test_out_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    code, err = run(capsys, "synth", "--out", str(f))
    assert code == 2 and one_line(err) == f"adtr synth: --out {f}: exists and is not a folder"


def test_epochs_with_the_nearest_neighbour_head(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default preset is fitted in one pass: --epochs was silently ignored."""
    root = small_set(tmp_path)
    code, err = run(capsys, "train", "--data", str(root), "--out", str(tmp_path / "ck"), "--epochs", "3")
    assert code == 2 and one_line(err) == "adtr train: --epochs 3: preset lite0 is the nearest-neighbour head, fitted in one pass; it has no epochs"
    assert not (tmp_path / "ck").exists()


@pytest.mark.parametrize("epochs", ["0", "-1"])  # 0 ran the preset's epochs silently; -1 was a traceback
def test_epochs_below_one(epochs: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = small_set(tmp_path)
    code, err = run(capsys, "train", "--data", str(root), "--out", str(tmp_path / "ck"), "--preset", "tiny", "--epochs", epochs)
    assert code == 2 and one_line(err) == f"adtr train: --epochs {epochs}: want at least 1"


@pytest.mark.parametrize(
    "meta, problem",
    [
        # not a JSON object
        ("[1, 2]", "want a JSON object, got list"),
        # input missing: a KeyError traceback before
        ('{"pool_kernel": 3}', "input: missing or not an object"),
        # an edited size
        ('{"input": {"width": "224", "height": 224}, "pool_kernel": 3}', "input.width '224'"),
        ('{"input": {"width": 224, "height": 112}, "pool_kernel": 3}', "input.height 112"),
        ('{"input": {"width": 8, "height": 8}, "pool_kernel": 3}', "input.width 8"),
        # pool_kernel missing, a fraction, zero, a boolean
        ('{"input": {"width": 224, "height": 224}}', "pool_kernel None"),
        ('{"input": {"width": 224, "height": 224}, "pool_kernel": 2.5}', "pool_kernel 2.5"),
        ('{"input": {"width": 224, "height": 224}, "pool_kernel": 0}', "pool_kernel 0"),
        ('{"input": {"width": 224, "height": 224}, "pool_kernel": true}', "pool_kernel True"),
        # a section another tool flattened
        ('{"input": {"width": 224, "height": 224}, "pool_kernel": 3, "engines": []}', "engines: want an object"),
        # not JSON at all
        ("{", "malformed JSON"),
        # JSON the daemon's decoder refuses, or Python's json cannot read: NaN, a nesting
        # deeper than Python recurses (a traceback), a number past Python's 4300 digits
        # (a message naming no file)
        ('{"input": {"width": NaN, "height": 224}, "pool_kernel": 3}', "malformed JSON (NaN is not JSON"),
        ("[" * 100000 + "]" * 100000, "nested too deeply"),
        ('{"input": {"width": ' + "9" * 5000 + ', "height": 224}, "pool_kernel": 3}', "is out of a 64-bit integer's range"),
        # a float height passed as equal to the width
        ('{"input": {"width": 224, "height": 224.0}, "pool_kernel": 3}', "input.height 224.0"),
        # an edit of the top level alone: the threshold was set with the model section's
        ('{"input": {"width": 224, "height": 224}, "pool_kernel": 8, "model": {"pool_kernel": 16}}',
         "pool_kernel 8 disagrees with model.pool_kernel 16"),
        ('{"input": {"width": 256, "height": 256}, "pool_kernel": 8, "model": {"input_size": 224}}',
         "input.width 256 disagrees with model.input_size 224"),
        # another engine's entry broken: reference rewrote the file, then raised TypeError
        ('{"input": {"width": 224, "height": 224}, "pool_kernel": 3, "engines": {"onnxruntime": 5}}', "engines.onnxruntime: want an object"),
        ('{"input": {"width": 224, "height": 224}, "pool_kernel": 3, "engines": {"onnxruntime": {}}}', "engines.onnxruntime.reference_score None"),
        ('{"input": {"width": 224, "height": 224}, "pool_kernel": 3, "engines": {"x": {"reference_score": "x", "tolerance": 0}}}',
         "engines.x.reference_score 'x'"),
        ('{"input": {"width": 224, "height": 224}, "pool_kernel": 3, "engines": {"x": {"reference_score": 1, "tolerance": -1}}}',
         "engines.x.tolerance -1"),
        # numbers past what the daemon reads: 1e400 was read as inf and written back
        ('{"input": {"width": 224, "height": 224}, "pool_kernel": 3, "threshold": 1e400}', "1e400 is out of a float64's range"),
        ('{"input": {"width": 224, "height": 224}, "pool_kernel": 3, "engines": {"x": {"reference_score": 1' + "0" * 400 + ', "tolerance": 0}}}',
         "out of a 64-bit integer's range"),
        # engine names the daemon refuses; a newline in one had cut the message
        ('{"input": {"width": 224, "height": 224}, "pool_kernel": 3, "engines": {"TFLite": {"reference_score": 1, "tolerance": 0}}}',
         "engines: 'TFLite' is not an engine's name"),
        ('{"input": {"width": 224, "height": 224}, "pool_kernel": 3, "engines": {"a\\nb": {"reference_score": 1, "tolerance": 0}}}',
         "engines: 'a\\nb' is not an engine's name"),
        # another graph's metadata: eval had scored with its sizes silently
        ('{"input": {"width": 224, "height": 224}, "pool_kernel": 3, "sha256": "' + "0" * 64 + '"}', "not this graph's metadata"),
    ],
    ids=lambda v: v[:48] if isinstance(v, str) else None,
)
@pytest.mark.parametrize("cmd", ["eval", "reference"])
def test_graph_metadata_is_checked_before_use(cmd: str, meta: str, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`eval --graph` and `reference` read the metadata beside a graph before running
    it; an edited or foreign one is one line naming the file and the key."""
    import hashlib

    graph = tmp_path / "m.tflite"
    graph.write_bytes(b"not run: the metadata is refused first")
    if meta.startswith('{"'):
        # reference checks that the metadata describes this graph (after reading it)
        meta = '{"sha256": "' + hashlib.sha256(graph.read_bytes()).hexdigest() + '", ' + meta[1:]
    (tmp_path / "m.tflite.json").write_text(meta)
    before = (tmp_path / "m.tflite.json").read_bytes()
    argv = ["eval", "--graph", str(graph), "--data", str(small_set(tmp_path / "d"))] if cmd == "eval" else ["reference", str(graph)]
    code, err = run(capsys, *argv)
    line = one_line(err)
    assert code == 2 and line.startswith(f"adtr {cmd}: {tmp_path / 'm.tflite.json'}: ") and problem in line, line
    assert (tmp_path / "m.tflite.json").read_bytes() == before  # reference rewrote nothing


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
@pytest.mark.parametrize("cmd", ["eval", "reference"])
def test_metadata_whose_input_size_is_not_the_graphs(cmd: str, suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A consistent metadata edit (every size 256) on the demo graph that takes 224:
    a reshape error naming nothing (.tflite) or an ONNX Runtime traceback (.onnx) before."""
    import json
    import shutil

    demo = Path(__file__).resolve().parents[2] / "models" / "demo"
    graph = tmp_path / f"adtr{suffix}"
    shutil.copy(demo / f"adtr{suffix}", graph)
    meta = json.loads((demo / f"adtr{suffix}.json").read_text())
    meta["input"].update(width=256, height=256)
    meta["model"]["input_size"] = 256
    (tmp_path / f"adtr{suffix}.json").write_text(json.dumps(meta))
    argv = ["eval", "--graph", str(graph), "--data", str(small_set(tmp_path / "d"))] if cmd == "eval" else ["reference", str(graph)]
    code, err = run(capsys, *argv)
    line = one_line(err)
    assert code == 2 and line == f"adtr {cmd}: {graph}: input tensor is [1, 224, 224, 3], its metadata {graph}.json says 256x256", line


def test_metadata_whose_input_size_is_not_the_graphs_on_the_c_library(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`eval --c-library` checks the size against the C interpreter's own input tensor."""
    import json
    import shutil

    from adtr.tflite_c import default_library

    demo = Path(__file__).resolve().parents[2] / "models" / "demo"
    graph = tmp_path / "adtr.tflite"
    shutil.copy(demo / "adtr.tflite", graph)
    meta = json.loads((demo / "adtr.tflite.json").read_text())
    meta["input"].update(width=256, height=256)
    meta["model"]["input_size"] = 256
    (tmp_path / "adtr.tflite.json").write_text(json.dumps(meta))
    code, err = run(capsys, "eval", "--graph", str(graph), "--data", str(small_set(tmp_path / "d")), "--c-library", str(default_library()))
    line = one_line(err)
    assert code == 2 and line == f"adtr eval: {graph}: input tensor is [1, 224, 224, 3], its metadata {graph}.json says 256x256", line


def test_metadata_that_is_not_a_regular_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A FIFO in the metadata's place made `reference` block for ever."""
    import os

    graph = tmp_path / "m.tflite"
    graph.write_bytes(b"x")
    os.mkfifo(tmp_path / "m.tflite.json")
    code, err = run(capsys, "reference", str(graph))
    assert code == 2 and one_line(err) == f"adtr reference: {tmp_path / 'm.tflite.json'}: not a regular file"



def test_reference_rewrites_a_symlinked_metadata_where_it_points(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The link was replaced by a regular file and its target left as it was."""
    import json
    import shutil

    demo = Path(__file__).resolve().parents[2] / "models" / "demo"
    graph = tmp_path / "adtr.tflite"
    shutil.copy(demo / "adtr.tflite", graph)
    target = tmp_path / "meta" / "real.json"
    target.parent.mkdir()
    meta = json.loads((demo / "adtr.tflite.json").read_text())
    del meta["engines"]
    target.write_text(json.dumps(meta))
    (tmp_path / "adtr.tflite.json").symlink_to(target)
    code, _ = run(capsys, "reference", str(graph))
    assert code == 0 and (tmp_path / "adtr.tflite.json").is_symlink()
    assert "tflite" in json.loads(target.read_text())["engines"]

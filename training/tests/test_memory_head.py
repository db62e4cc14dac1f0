"""The nearest-neighbour (memory) head: the second head `train` can build, exported to
the same int8 graph and metadata as ADTR, so the daemon runs it without knowing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from adtr import checkpoint, evaluate, exact, export, train
from adtr.config import preset
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
    ck = train.train(p.model.replace(reconstructor="memory", memory_size=512, seed=1), p.train, dataset)
    out = tmp_path_factory.mktemp("memory") / "m.tflite"
    export.export_tflite(ck, out, dataset.train(ck.cfg.input_size)[:32], "test-memory")
    return ck, out


def test_memory_head_exports_to_the_exact_int8_graph(memory_graph, split) -> None:  # type: ignore[no-untyped-def]
    """The same rules as ADTR's graph: exact.check passes, the daemon's TFLite 2.9 C
    library gives the Python interpreter's map at 0 steps, int8 within 0.02 of float,
    and the metadata says which head made it."""
    if not default_library().is_file():
        pytest.fail(f"{default_library()}: missing; `make deps` installs it")
    from tensorflow.lite.tools import flatbuffer_utils as fu

    ck, graph = memory_graph
    m = fu.read_model(str(graph))
    names = {fu.opcode_to_name(m, op.opcodeIndex) for op in m.subgraphs[0].operators}
    assert {"ARG_MIN", "GATHER"} <= names and not {"ADD", "SUB", "MUL", "MEAN", "RSQRT"} & names, sorted(names)
    exact.check(exact._Graph(m))
    py = evaluate.TFLiteRunner(graph)
    worst = 0
    with CInterpreter(graph) as c:
        for im in split.images:
            worst = max(worst, int(np.abs(c.run(im)[0].astype(np.int32) - py.raw(im).astype(np.int32)).max()))
    assert worst == 0
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

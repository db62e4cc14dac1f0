"""Shared fixtures: one generated category and one tiny model trained on it per session.

Training happens once (session scope) because the tests that need a model all ask
questions of the same one; the data set is generated here by the code under test.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from adtr import checkpoint, synth, train  # noqa: E402
from adtr.config import preset  # noqa: E402
from adtr.data import Dataset  # noqa: E402

CATEGORY = os.environ.get("ADTR_TEST_CATEGORY", "printed_part")
SEED = 1  # not the demo's seed: the test trains its own model on its own images


@pytest.fixture(scope="session")
def gimp_data() -> None:
    """Skips without gimp-data's patterns, unless ADTRD_REQUIRE_TOOLS is set (as the
    Makefile does after `make sysdeps`), when it fails with the install hint."""
    from adtr import textures

    missing = [textures.PATTERNS_DIR / f for f in textures.TEXTURES.values() if not (textures.PATTERNS_DIR / f).is_file()]
    if missing:
        msg = f"{missing[0]}: not found (gimp-data is installed by `make sysdeps`: scripts/install-debs.sh)"
        if os.environ.get("ADTRD_REQUIRE_TOOLS"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    root = tmp_path_factory.mktemp("data")
    return Dataset(synth.write_category(root, synth.SynthSpec(CATEGORY, seed=SEED)))


@pytest.fixture(scope="session")
def defects(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """Labelled defects as a line collects them (test/<kind> + ground_truth), for ADTR+:
    the same kinds as the test split, from another seed, so no test image is among them."""
    root = tmp_path_factory.mktemp("defects")
    spec = synth.SynthSpec(CATEGORY, n_train=1, n_test_good=0, n_test_defect=8, seed=SEED + 100)
    return Dataset(synth.write_category(root, spec))


@pytest.fixture(scope="session")
def trained(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = preset("tiny")
    ck = train.train(p.model.replace(seed=SEED), p.train, dataset)
    return checkpoint.save(ck, tmp_path_factory.mktemp("ck") / "tiny")


@pytest.fixture(scope="session")
def split(dataset: Dataset):  # type: ignore[no-untyped-def]
    return dataset.test(preset("tiny").model.input_size)


@pytest.fixture(scope="session")
def exported(trained: Path, dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from adtr import export

    ck = checkpoint.load(trained)
    out = tmp_path_factory.mktemp("export")
    export.export_tflite(ck, out / "m.tflite", dataset.train(ck.cfg.input_size)[:64], "test")
    export.export_onnx(ck, out / "m.onnx", "test")
    export.export_onnx(ck, out / "m.int8.onnx", "test", good=dataset.train(ck.cfg.input_size)[:64])
    return {"tflite": out / "m.tflite", "onnx": out / "m.onnx", "onnx_int8": out / "m.int8.onnx"}

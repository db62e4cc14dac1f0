from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adtr import synth


def test_images_are_a_pure_function_of_seed_and_index() -> None:
    a = synth.good_image("weave", 64, 3, "train", 5)
    b = synth.good_image("weave", 64, 3, "train", 5)
    c = synth.good_image("weave", 64, 3, "train", 6)
    d = synth.good_image("weave", 64, 4, "train", 5)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)  # another part
    assert not np.array_equal(a, d)  # another seed


@pytest.mark.parametrize("category", synth.CATEGORIES)
def test_good_images_vary_but_stay_alike(category: str) -> None:
    imgs = np.stack([synth.good_image(category, 96, 0, "train", i) for i in range(6)]).astype(np.float32)
    spread = imgs.std(0).mean()
    assert imgs.shape == (6, 96, 96, 3)
    assert spread > 2.0  # lighting, shifts and noise differ from part to part
    # ... but it is one product: mean colours stay within a few percent.
    means = imgs.mean((1, 2))
    assert np.abs(means - means.mean(0)).max() < 0.12 * means.mean()


@pytest.mark.parametrize("category", synth.CATEGORIES)
@pytest.mark.parametrize("defect", synth.DEFECTS)
def test_defects_change_the_image_where_the_mask_says(category: str, defect: str) -> None:
    img, mask = synth.defect_image(category, defect, 128, 0, 0)
    base = synth.good_image(category, 128, 0, f"test-{defect}", 0)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    inside = mask > 0
    assert 10 < inside.sum() < 0.25 * inside.size
    diff = np.abs(img.astype(np.int32) - base.astype(np.int32)).sum(-1)
    assert diff[inside].mean() > 3 * max(diff[~inside].mean(), 1.0)


def test_write_category_layout_and_refuses_to_overwrite(tmp_path: Path) -> None:
    spec = synth.SynthSpec("printed_part", size=64, n_train=3, n_test_good=2, n_test_defect=1)
    root = synth.write_category(tmp_path, spec)
    assert len(list((root / "train" / "good").glob("*.png"))) == 3
    assert len(list((root / "test" / "good").glob("*.png"))) == 2
    for d in synth.DEFECTS:
        (img,) = (root / "test" / d).glob("*.png")
        mask = root / "ground_truth" / d / f"{img.stem}_mask.png"
        assert Image.open(mask).size == Image.open(img).size
    with pytest.raises(FileExistsError, match="already exists"):
        synth.write_category(tmp_path, spec)
    assert [p.name for p in tmp_path.iterdir()] == ["printed_part"]  # no temporary left behind


def test_unknown_category_and_defect() -> None:
    with pytest.raises(ValueError, match="unknown category 'wood'"):
        synth.good_image("wood", 32, 0, "train", 0)
    with pytest.raises(ValueError, match="unknown defect 'dent'"):
        synth.defect_image("weave", "dent", 32, 0, 0)


def test_written_folder_has_a_plain_mkdir_mode(tmp_path: Path) -> None:
    """Built in a mkdtemp folder (mode 0700) and renamed: it must not stay private."""
    import os

    root = synth.write_category(tmp_path, synth.SynthSpec("weave", size=16, n_train=1, n_test_good=1, n_test_defect=1))
    umask = os.umask(0)
    os.umask(umask)
    assert root.stat().st_mode & 0o777 == 0o777 & ~umask

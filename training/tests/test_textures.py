"""Real-texture sets from gimp-data's photographs: reproducible, alike when good, and
each defect where its mask says; GIMP .pat files read safely."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adtr import textures
from adtr.cli import main
from adtr.data import DataError, Dataset
from adtr.synth import SynthSpec


def pat_bytes(width: int, height: int, bpp: int, *, magic: bytes = b"GPAT", version: int = 1, name: bytes = b"test",
              header_size: int | None = None, pixels: bytes | None = None) -> bytes:
    """A GIMP .pat file: big-endian header_size, version, width, height, bpp, magic, name, NUL, pixels."""
    body = name + b"\0"
    hs = 24 + len(body) if header_size is None else header_size
    if pixels is None:
        pixels = bytes(range(256)) * (width * height * bpp // 256 + 1)
        pixels = pixels[: width * height * bpp]
    return struct.pack(">5I4s", hs, version, width, height, bpp, magic) + body + pixels


def one_line(s: str) -> str:
    assert len(s.strip().splitlines()) == 1, s
    return s.strip()


@pytest.mark.usefixtures("gimp_data")
@pytest.mark.parametrize("args, same", [
    (("leather", 96, 3, "train", 5), True),  # the same arguments: the same image, bit for bit
    (("leather", 96, 3, "train", 6), False),  # another index: another piece of leather
    (("leather", 96, 4, "train", 5), False),  # another seed
    (("leather", 96, 3, "test", 5), False),  # another split
    (("wood", 96, 3, "train", 5), False),  # another category
])
def test_images_are_a_pure_function_of_seed_category_split_index(args: tuple[str, int, int, str, int], same: bool) -> None:
    a = textures.good_image("leather", 96, 3, "train", 5)
    b = textures.good_image(*args)
    assert a.shape == b.shape == (96, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) == same


@pytest.mark.usefixtures("gimp_data")
def test_defect_images_are_reproducible() -> None:
    img1, mask1 = textures.defect_image("marble", "crack", 96, 2, 1)
    img2, mask2 = textures.defect_image("marble", "crack", 96, 2, 1)
    assert np.array_equal(img1, img2) and np.array_equal(mask1, mask2)
    img3, _ = textures.defect_image("marble", "crack", 96, 2, 2)
    assert not np.array_equal(img1, img3)


@pytest.mark.usefixtures("gimp_data")
@pytest.mark.parametrize("category", textures.CATEGORIES)
def test_good_images_vary_but_stay_alike(category: str) -> None:
    imgs = np.stack([textures.good_image(category, 128, 0, "train", i) for i in range(8)]).astype(np.float32)
    assert imgs.shape == (8, 128, 128, 3)
    # Offsets, flips, lighting and noise differ from piece to piece...
    assert imgs.std(0).mean() > 4.0
    # ... but it is one material: mean colours within a few percent, contrast alike,
    # and a texture, not a flat field.
    means = imgs.mean((1, 2))
    colour = means.mean(0)
    assert (np.abs(means - colour) < 0.12 * colour + 2).all(), means  # + 2: leather's blue is around 7
    stds = imgs.std((1, 2)).mean(-1)
    assert stds.min() > 5.0
    assert stds.max() < 1.35 * np.median(stds) and stds.min() > 0.7 * np.median(stds)


@pytest.mark.usefixtures("gimp_data")
@pytest.mark.parametrize("category", textures.CATEGORIES)
@pytest.mark.parametrize("defect", textures.DEFECTS)
def test_defects_change_the_image_where_the_mask_says(category: str, defect: str) -> None:
    for index in range(4):
        img, mask = textures.defect_image(category, defect, 224, 0, index)
        base = textures.good_image(category, 224, 0, f"test-{defect}", index)
        assert mask.shape == (224, 224) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        inside = mask > 0
        # Visible but not huge: from a fraction of a percent to a few percent of the frame.
        assert 0.003 < inside.mean() < 0.05, f"{defect} #{index}: {inside.mean():.2%} of the frame"
        diff = np.abs(img.astype(np.int32) - base.astype(np.int32)).sum(-1)
        assert diff[inside].mean() > 10, f"{defect} #{index}: mean change {diff[inside].mean():.1f} inside the mask"
        assert diff[inside].mean() > 3 * max(diff[~inside].mean(), 1.0)
        # (Almost) nowhere else: a soft edge, a shadow's fringe, the camera's blur.
        changed_outside = int((diff[~inside] > 24).sum())
        assert changed_outside < 0.15 * inside.sum(), f"{defect} #{index}: {changed_outside} pixels changed outside the mask"


@pytest.mark.usefixtures("gimp_data")
def test_write_category_layout_and_refuses_to_overwrite(tmp_path: Path) -> None:
    spec = SynthSpec("burlap", size=64, n_train=3, n_test_good=2, n_test_defect=1)
    root = textures.write_category(tmp_path, spec)
    assert root == tmp_path / "burlap"
    assert len(list((root / "train" / "good").glob("*.png"))) == 3
    assert len(list((root / "test" / "good").glob("*.png"))) == 2
    for d in textures.DEFECTS:
        (img,) = (root / "test" / d).glob("*.png")
        mask = root / "ground_truth" / d / f"{img.stem}_mask.png"
        assert Image.open(mask).size == Image.open(img).size == (64, 64)
    split = Dataset(root).test(64)  # the toolkit's own reader takes it
    assert sorted(split.kinds) == sorted(["good", "good", *textures.DEFECTS])
    for kind, label, mask in zip(split.kinds, split.labels, split.masks):
        assert label == (kind != "good") and mask.any() == (kind != "good"), kind
    with pytest.raises(FileExistsError, match="already exists"):
        textures.write_category(tmp_path, spec)
    assert [p.name for p in tmp_path.iterdir()] == ["burlap"]  # no temporary left behind


@pytest.mark.usefixtures("gimp_data")
def test_write_all_refuses_before_writing_anything(tmp_path: Path) -> None:
    (tmp_path / "wood").mkdir()
    with pytest.raises(FileExistsError, match="wood: already exists"):
        textures.write_all(tmp_path, size=32, n_train=1, n_test_good=1, n_test_defect=1, categories=("leather", "wood"))
    assert [p.name for p in tmp_path.iterdir()] == ["wood"]


@pytest.mark.usefixtures("gimp_data")
@pytest.mark.parametrize("category", textures.CATEGORIES)
def test_patterns_are_photographs_big_enough_to_tile(category: str) -> None:
    a = textures.read_pat(textures.PATTERNS_DIR / textures.TEXTURES[category])
    assert a.ndim == 3 and a.shape[2] == 3 and a.dtype == np.uint8
    assert min(a.shape[:2]) >= 64
    assert a.std() > 5  # a photograph, not a flat fill


@pytest.mark.parametrize("data, problem", [
    (pat_bytes(8, 8, 3)[:-1], "truncated GIMP pattern"),  # one pixel byte short
    (pat_bytes(8, 8, 3)[:10], "shorter than the header"),  # cut inside the header
    (pat_bytes(8, 8, 3, magic=b"GIMP"), "not a GIMP pattern (magic b'GIMP'"),  # bad magic
    (pat_bytes(1 << 31, 1 << 31, 4, pixels=b""), "absurd size 2147483648x2147483648"),  # huge declared size, nothing allocated
    (pat_bytes(100000, 100000, 3, pixels=b""), "absurd size"),  # huge in total though each side is plausible-ish
    (pat_bytes(0, 8, 3, pixels=b""), "absurd size 0x8"),  # empty
    (pat_bytes(8, 8, 5), "5 bytes per pixel"),  # no such pixel format
    (pat_bytes(8, 8, 3, version=2), "version 2"),  # a format we do not know
    (pat_bytes(8, 8, 3, header_size=1 << 20), "header size 1048576 outside the file"),  # header past the end
    (pat_bytes(8, 8, 3, header_size=4), "header size 4 outside the file"),  # header shorter than its fields
])
def test_read_pat_rejects_malformed_files(tmp_path: Path, data: bytes, problem: str) -> None:
    path = tmp_path / "bad.pat"
    path.write_bytes(data)
    with pytest.raises(DataError) as e:
        textures.read_pat(path)
    msg = one_line(str(e.value))
    assert msg.startswith(f"{path}: ") and problem in msg, msg


@pytest.mark.parametrize("bpp, expect", [
    (1, lambda px: np.repeat(px, 3, axis=2)),  # grey: repeated into R, G and B
    (2, lambda px: np.repeat(px[..., :1], 3, axis=2)),  # grey + alpha: alpha dropped
    (3, lambda px: px),  # RGB as stored
    (4, lambda px: px[..., :3]),  # RGBA: alpha dropped
])
def test_read_pat_converts_to_rgb(tmp_path: Path, bpp: int, expect) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(bpp)
    px = rng.integers(0, 256, (5, 7, bpp), dtype=np.uint8)
    path = tmp_path / "ok.pat"
    path.write_bytes(pat_bytes(7, 5, bpp, pixels=px.tobytes()))
    got = textures.read_pat(path)
    assert got.shape == (5, 7, 3) and got.dtype == np.uint8
    assert np.array_equal(got, expect(px))


def test_missing_gimp_data_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(textures, "PATTERNS_DIR", tmp_path / "patterns")
    expect = f"{tmp_path / 'patterns' / 'Animal' / 'leather.pat'}: not found (gimp-data is installed by `make sysdeps`)"
    with pytest.raises(FileNotFoundError) as e:
        textures.good_image("leather", 32, 0, "train", 0)
    assert str(e.value) == expect
    out = tmp_path / "out"
    assert main(["textures", "--out", str(out), "--size", "32", "--train", "1"]) == 2
    assert one_line(capsys.readouterr().err) == f"adtr textures: {expect}"
    assert not out.exists()


@pytest.mark.parametrize("call, problem", [
    (lambda: textures.good_image("brick", 32, 0, "train", 0), "unknown category 'brick'"),  # skimage's, not ours
    (lambda: textures.defect_image("wood", "cut_paste", 32, 0, 0), "unknown defect 'cut_paste'"),  # synth's kind, not ours
])
def test_unknown_category_and_defect(call, problem: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=problem):
        call()


@pytest.mark.usefixtures("gimp_data")
def test_cli_writes_the_categories_asked_for(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tex"
    args = ["textures", "--out", str(out), "--categories", "granite", "wood", "--size", "48",
            "--train", "2", "--test-good", "1", "--test-defect", "1", "--seed", "7"]
    assert main(args) == 0
    assert capsys.readouterr().out.split() == [str(out / "granite"), str(out / "wood")]
    assert np.array_equal(np.asarray(Image.open(out / "wood" / "train" / "good" / "001.png")),
                          textures.good_image("wood", 48, 7, "train", 1))
    assert main(args) == 2
    assert one_line(capsys.readouterr().err) == f"adtr textures: {out / 'granite'}: already exists"
    assert main(["textures", "--out", str(out), "--categories", "brick"]) == 2
    assert "unknown category 'brick'" in one_line(capsys.readouterr().err)

"""Reads an MVTec-AD-layout folder: train/good, test/good, test/<defect>, ground_truth.

Every problem is a DataError naming the file or folder, so the CLI can print one line.
"""

from __future__ import annotations

import io
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import preprocess

# The daemon reads the same two formats (capture.ListImages).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FORMATS = ("PNG", "JPEG")


class DataError(ValueError):
    """A dataset folder or file that cannot be used."""


@dataclass
class Split:
    """Images resized to the model's input, with labels and masks for test splits."""

    images: np.ndarray  # (N, S, S, 3) uint8
    labels: np.ndarray  # (N,) 0 good, 1 defective
    masks: np.ndarray  # (N, S, S) uint8 in {0, 1}
    paths: list[Path]
    kinds: list[str]  # "good" or the defect folder's name


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


# The daemon's limits (capture.MaxPixels, capture.MaxFileBytes): a PNG can declare
# 30000x30000 pixels in 109 KB, and a path can name a FIFO whose read never ends.
MAX_PIXELS = 48 << 20
MAX_FILE_BYTES = 256 << 20


def load_image(path: Path, size: int, *, mode: str = "RGB", expect: tuple[int, int] | None = None, fit: str = "resize",
               decoder: preprocess.DaemonDecoder | None = None) -> np.ndarray:
    """An image file as the model's (size, size, 3) uint8 input, by the preprocessing
    contract (preprocess.py, the same as the daemon's), or with decoder through the
    daemon's own decoding; mode "L" reads a mask (nearest-neighbour resize, values as
    stored).

    The file must be regular and at most MAX_FILE_BYTES; the size its header declares is
    checked against MAX_PIXELS before any pixel is decoded.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: not a regular file")
    if st.st_size > MAX_FILE_BYTES:
        raise DataError(f"{path}: {st.st_size} bytes, larger than the {MAX_FILE_BYTES >> 20} MiB an image may have")
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own pixel limit before our check below refuses.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _decode(path, size, mode, expect, fit, decoder)
    except DataError:
        raise
    except preprocess.PreprocessError as e:
        raise DataError(f"{path}: {e}") from None
    except Image.DecompressionBombError as e:  # Pillow's own limit, checked in Image.open
        raise DataError(f"{path}: declares too many pixels, over the {MAX_PIXELS >> 20} M limit ({e})") from None
    except Exception as e:  # noqa: BLE001 - Pillow raises struct.error, ValueError... on malformed files
        raise DataError(f"{path}: not a readable image ({e.__class__.__name__}: {str(e)[:120]})") from None


def _decode(path: Path, size: int, mode: str, expect: tuple[int, int] | None, fit: str,
            decoder: preprocess.DaemonDecoder | None) -> np.ndarray:
    raw = path.read_bytes()  # once: the structure checks and Pillow read the same bytes
    with Image.open(io.BytesIO(raw)) as im:
        w, h = im.size
        if w <= 0 or h <= 0 or w * h > MAX_PIXELS:
            raise DataError(f"{path}: declares {w}x{h} pixels, over the {MAX_PIXELS >> 20} M limit")
        if im.format not in FORMATS:
            raise DataError(f"{path}: a {im.format} file; images are PNG or JPEG")
        if expect is not None and im.size != expect:
            raise DataError(f"{path}: image is {im.size[0]}x{im.size[1]}, the others are {expect[0]}x{expect[1]}")
        if im.format == "PNG" and (problem := preprocess.png_problem(raw)):
            raise DataError(f"{path}: not a readable image (png: {problem})")
        if im.format == "JPEG" and (n := preprocess.jpeg_scans(raw)) > preprocess.MAX_JPEG_SCANS:
            raise DataError(f"{path}: a JPEG of {n} scans, over the {preprocess.MAX_JPEG_SCANS} an image may have")
        if decoder is not None and mode == "RGB":
            return decoder(path, size, fit)
        im.load()
        if mode == "L":
            im = im.convert("L")
            if im.size != (size, size):
                im = im.resize((size, size), Image.NEAREST)
            return np.asarray(im)
        return preprocess.fit(preprocess.to_rgb8(im), size, fit)


class Dataset:
    """One category folder in MVTec-AD layout."""

    def __init__(self, root: str | Path, decoder: preprocess.DaemonDecoder | None = None) -> None:
        self.root = Path(root)
        self.decoder = decoder
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset folder not found")
        self.train_dir = self.root / "train" / "good"
        self.test_dir = self.root / "test"
        if not self.train_dir.is_dir():
            raise DataError(f"{self.train_dir}: missing (expected MVTec-AD layout: train/good, test/<kind>, ground_truth/<kind>)")
        self._size: tuple[int, int] | None = None

    def _load(self, path: Path, size: int, mode: str = "RGB") -> np.ndarray:
        # MVTec categories have one image size; a mixed folder is almost always a mistake.
        if mode == "RGB" and self._size is None:
            try:
                with Image.open(path) as im:
                    self._size = im.size
            except (UnidentifiedImageError, OSError) as e:
                raise DataError(f"{path}: not a readable image ({e.__class__.__name__})") from None
        return load_image(path, size, mode=mode, expect=self._size if mode == "RGB" else None, decoder=self.decoder)

    def train_paths(self) -> list[Path]:
        paths = _images_in(self.train_dir)
        if not paths:
            raise DataError(f"{self.train_dir}: no images")
        return paths

    def train(self, size: int) -> np.ndarray:
        return np.stack([self._load(p, size) for p in self.train_paths()])

    def summary(self, size: int, **extra: int) -> dict[str, object]:
        """What a model was trained on, for its metadata."""
        kinds = sorted(d.name for d in self.test_dir.iterdir() if d.is_dir()) if self.test_dir.is_dir() else []
        return {
            "root": str(self.root),
            "category": self.root.name,
            "train_good": len(self.train_paths()),
            "source_size": list(self._size) if self._size else None,
            "model_input": size,
            "test_kinds": kinds,
            **extra,
        }

    def test(self, size: int, *, need_both: bool = True) -> Split:
        if not self.test_dir.is_dir():
            raise DataError(f"{self.test_dir}: missing")
        images, labels, masks, paths, kinds = [], [], [], [], []
        for kind_dir in sorted(d for d in self.test_dir.iterdir() if d.is_dir()):
            kind = kind_dir.name
            for p in _images_in(kind_dir):
                images.append(self._load(p, size))
                paths.append(p)
                kinds.append(kind)
                if kind == "good":
                    labels.append(0)
                    masks.append(np.zeros((size, size), np.uint8))
                    continue
                labels.append(1)
                mp = self.root / "ground_truth" / kind / f"{p.stem}_mask.png"
                if not mp.is_file():
                    raise DataError(f"{mp}: mask missing for {p}")
                masks.append((self._load(mp, size, "L") > 127).astype(np.uint8))
        if not images:
            raise DataError(f"{self.test_dir}: no images")
        if need_both and len(set(labels)) < 2:
            raise DataError(f"{self.test_dir}: needs both good and defective images to score AUROC")
        return Split(np.stack(images), np.array(labels), np.stack(masks), paths, kinds)

    def labelled_defects(self, size: int, kinds: list[str] | None = None) -> Split:
        """Defective images with masks for ADTR+ (a test-like folder of a line's collected defects)."""
        split = self.test(size, need_both=False)
        keep = [i for i, k in enumerate(split.kinds) if k != "good" and (kinds is None or k in kinds)]
        return Split(split.images[keep], split.labels[keep], split.masks[keep], [split.paths[i] for i in keep], [split.kinds[i] for i in keep])

"""Checkpoints: a folder with meta.json (configs, data summary, held-out files) and weights.

Written under a temporary name and renamed, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import re
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import strictjson
from .config import ConfigError, ModelConfig, TrainConfig
from .model import ADTR

# /3 carries model_sha256 and weights_sha256 (the two .h5 files) and must; /2 (before
# 2026-12-07) carries model_sha256 only and loads with the weights unchecked; /1 (before
# 2026-12) has neither. So deleting a hash from a /3 checkpoint does not switch its
# check off.
FORMAT = "adtr-checkpoint/3"
FORMAT_V2 = "adtr-checkpoint/2"
FORMAT_V1 = "adtr-checkpoint/1"
WEIGHT_FILES = ("backbone.h5", "reconstructor.h5")


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CheckpointError(ValueError):
    pass


@dataclass
class Checkpoint:
    model: ADTR
    train: TrainConfig
    data: dict[str, Any] = field(default_factory=dict)  # summary of what it was trained on
    heldout: list[str] = field(default_factory=list)  # good images kept out of training
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per training run
    backbone_weights: str | None = None

    @property
    def cfg(self) -> ModelConfig:
        return self.model.cfg


def _config_hash(cfg: ModelConfig) -> str:
    # Numbers as floats: a JSON tool that re-saves meta.json may write 4.0 as 4, which
    # is no edit of the configuration.
    def norm(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float, list, tuple, dict)):
            return v
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        return float(v)

    d = cfg.to_dict()
    # Keys added after format /2 are left out while they hold the value that means
    # "off", so checkpoints written before them keep their hash.
    for key, off in _ADDED_LATER.items():
        if d.get(key) == off:
            d.pop(key)
    return hashlib.sha256(json.dumps(norm(d), sort_keys=True).encode()).hexdigest()


_ADDED_LATER: dict[str, Any] = {"memory_density_k": 0}


def _check_density(model: ADTR, wpath: Path) -> None:
    """The memory head's density weights are a function of its memory (fit computes
    them): weights that are not that function, edited or damaged, would scale the map
    silently (a zero weight hides every defect near its token), so they are refused.
    Recomputing takes about 2 s for 8192 tokens on 2 cores."""
    from .baselines import density_weights

    cfg = model.cfg
    if cfg.reconstructor != "memory" or not cfg.memory_density_k:
        return
    mem = model.reconstructor.get_layer("memory")
    got = mem.density.numpy()[:, 0]
    want = density_weights(mem.memory.numpy(), cfg.memory_density_k)
    off = ~np.isclose(got, want, rtol=1e-4, atol=1e-5)
    if off.any():
        worst = int(np.argmax(np.abs(got - want)))
        raise CheckpointError(f"{wpath}: the memory's density weights are not the ones its memory gives ({int(off.sum())} of {len(got)} "
                              f"differ; token {worst} holds {got[worst]:.6g}, its memory gives {want[worst]:.6g}): edited or damaged; "
                              "fit the head again")


def refuse_existing(path: Path) -> None:
    if path.exists():
        raise FileExistsError(f"{path}: already exists (refusing to overwrite; pick another path or remove it)")


def save(ck: Checkpoint, path: str | Path) -> Path:
    path = Path(path)
    refuse_existing(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        meta = {
            "format": FORMAT,
            "model": ck.cfg.to_dict(),
            "train": asdict(ck.train),
            "data": ck.data,
            "heldout": ck.heldout,
            "history": ck.history,
            "backbone_weights": ck.backbone_weights,
            # The configuration the weights were trained (or the memory fitted) with: an
            # edited "model" section that the weights still fit by shape (a memory fitted
            # at stride 8, loaded at 16) would export a graph that computes something else.
            "model_sha256": _config_hash(ck.cfg),
        }
        ck.model.backbone.save_weights(str(tmp / "backbone.h5"))
        ck.model.reconstructor.save_weights(str(tmp / "reconstructor.h5"))
        # The weights belong to this meta.json: an edited table (a memory scaled by 2
        # loaded and scored 0.81 instead of 1.0) or another checkpoint's file is refused.
        meta["weights_sha256"] = {name: _file_sha256(tmp / name) for name in WEIGHT_FILES}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, allow_nan=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load(path: str | Path, expect: ModelConfig | None = None) -> Checkpoint:
    """Load a checkpoint; with expect, refuse one trained for another configuration."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise CheckpointError(f"{path}: not a checkpoint (no meta.json)")
    meta = strictjson.load(meta_path, CheckpointError)
    if not isinstance(meta, dict) or meta.get("format") not in (FORMAT, FORMAT_V2, FORMAT_V1):
        raise CheckpointError(f"{meta_path}: format is not {FORMAT} (or {FORMAT_V2}, {FORMAT_V1})")
    if not isinstance(meta.get("model"), dict):
        raise CheckpointError(f"{meta_path}: model: want the model configuration object, got {type(meta.get('model')).__name__}")
    try:
        cfg = ModelConfig.from_dict(meta["model"])
        tcfg = TrainConfig.from_dict(meta.get("train"))
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{meta_path}: bad configuration ({e})") from None
    saved = meta.get("model_sha256")
    if saved is not None and not (isinstance(saved, str) and re.fullmatch(r"[0-9a-f]{64}", saved)):
        raise CheckpointError(f"{meta_path}: model_sha256 {str(saved)[:20]!r}: want 64 lowercase hex digits")
    if saved is None and meta["format"] in (FORMAT, FORMAT_V2):
        raise CheckpointError(f"{meta_path}: model_sha256 missing ({FORMAT} checkpoints carry the hash of the configuration "
                              "they were trained with); train again instead of editing meta.json")
    weights_sha = meta.get("weights_sha256")
    if meta["format"] == FORMAT or weights_sha is not None:
        if not (isinstance(weights_sha, dict) and set(weights_sha) == set(WEIGHT_FILES)
                and all(isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in weights_sha.values())):
            raise CheckpointError(f"{meta_path}: weights_sha256: want the sha256 (64 lowercase hex digits) of "
                                  f"{' and '.join(WEIGHT_FILES)} ({FORMAT} checkpoints carry them); train again instead of editing meta.json")
    if saved is not None and saved != _config_hash(cfg):
        raise CheckpointError(f"{meta_path}: the model configuration was edited after training (model_sha256 does not match); "
                              "the weights belong to the configuration they were trained with: train again instead")
    if expect is not None and expect.fingerprint() != cfg.fingerprint():
        diff = sorted(k for k, v in expect.to_dict().items() if cfg.to_dict().get(k) != v)
        raise CheckpointError(f"{path}: checkpoint is for another configuration (differs in {', '.join(diff)})")
    # What export and ADTR+ read later: refused here, with the key, rather than failing
    # there with a bare TypeError.
    heldout = meta.get("heldout", [])
    if not isinstance(heldout, list) or not all(isinstance(p, str) and p and p.isprintable() for p in heldout):
        raise CheckpointError(f"{meta_path}: heldout: want a list of image paths")
    for key, kind in (("data", dict), ("history", list)):
        if not isinstance(meta.get(key, kind()), kind):
            raise CheckpointError(f"{meta_path}: {key}: want a JSON {'object' if kind is dict else 'list'}")
    bw = meta.get("backbone_weights")
    if bw is not None and not isinstance(bw, str):
        raise CheckpointError(f"{meta_path}: backbone_weights: want a path or null")
    model = ADTR(cfg)
    for part in ("backbone", "reconstructor"):
        wpath = path / f"{part}.h5"
        if not wpath.is_file():
            gone = not wpath.exists() and not wpath.is_symlink()
            raise CheckpointError(f"{wpath}: missing" if gone else f"{wpath}: not a regular file (a directory, device, FIFO or broken link)")
        if weights_sha is not None and _file_sha256(wpath) != weights_sha[wpath.name]:
            raise CheckpointError(f"{wpath}: not the weights this checkpoint was saved with (its sha256 is not meta.json's "
                                  "weights_sha256): edited, damaged or from another checkpoint; train again")
        try:
            getattr(model, part).load_weights(str(wpath))
        except Exception as e:  # h5py and Keras raise ValueError, OSError, KeyError (a missing dataset), ...
            first = (str(e).splitlines() or [e.__class__.__name__])[0]
            raise CheckpointError(f"{wpath}: weights do not fit the configuration or the file is damaged ({first})") from None
        for w in getattr(model, part).weights:
            if not np.isfinite(w.numpy()).all():
                raise CheckpointError(f"{wpath}: {w.name} holds values that are not finite (NaN or infinite): a broken checkpoint")
    _check_density(model, path / "reconstructor.h5")
    return Checkpoint(model, tcfg, meta.get("data", {}), heldout, meta.get("history", []), bw)

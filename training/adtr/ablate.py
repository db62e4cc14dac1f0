"""Seed section 3.2 on generated data: does the query embedding stop the identity shortcut?

Three reconstructors on the same frozen features with the same epochs: ADTR, ADTR whose
decoder is fed the encoder output instead of learned queries, and a conv net with a
matching parameter budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import evaluate, train
from .config import ModelConfig, TrainConfig
from .data import Dataset

# The preset ablated when none is given: the default preset (lite0) is the
# nearest-neighbour head, which has no reconstructor to ablate.
DEFAULT_PRESET = "lite0-v1"

VARIANTS: tuple[tuple[str, dict[str, object]], ...] = (
    ("ADTR", {}),
    ("ADTR w/o query embedding", {"query_embedding": False}),
    ("conv reconstruction", {"reconstructor": "conv"}),
)


@dataclass(frozen=True)
class Row:
    name: str
    params: int
    image_auroc: float
    pixel_auroc: float
    final_mse: float


def run(cfg: ModelConfig, tcfg: TrainConfig, ds: Dataset, epochs: int | None = None) -> list[Row]:
    split = ds.test(cfg.input_size)
    rows = []
    for name, changes in VARIANTS:
        ck = train.train(cfg.replace(**changes), tcfg, ds, epochs=epochs)
        res = evaluate.evaluate_maps(ck.model.maps(split.images), split, cfg.pool_kernel)
        params = int(sum(np.prod(w.shape) for w in ck.model.reconstructor.trainable_weights))
        rows.append(Row(name, params, res.image_auroc, res.pixel_auroc, float(ck.history[-1]["final_mse"])))
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| reconstructor | parameters | train MSE | image AUROC | pixel AUROC |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.params:,} | {r.final_mse:.4f} | {r.image_auroc:.4f} | {r.pixel_auroc:.4f} |")
    return "\n".join(lines)

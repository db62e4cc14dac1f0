"""Model configuration and its presets.

A checkpoint stores the configuration it was trained with; loading it into any other
configuration is refused, because weights of the wrong shape or meaning score garbage.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, replace
from typing import Any

BACKBONES: tuple[str, ...] = ("random-cnn", "efficientnet-lite0", "efficientnet-b0", "efficientnet-b4")
RECONSTRUCTORS: tuple[str, ...] = ("transformer", "conv", "memory")
EMBED_INITS: tuple[str, ...] = ("uniform", "normal")


class ConfigError(ValueError):
    """A configuration that cannot be built."""


def _whole(key: str, v: Any) -> int:
    # A JSON tool may re-save 8 as 8.0: the same configuration (the checkpoint hash
    # reads them alike), which TF's shapes need as an int again.
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if not isinstance(v, int) or isinstance(v, bool):
        raise ConfigError(f"{key} {v!r}: want a whole number")
    return v


def _numbers(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    """d with each int field a whole number and each float field a float (a JSON tool
    may write 4.0 as 4: the same value); anything else for a number is a ConfigError."""
    d = dict(d)
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        v = d[f.name]
        if isinstance(f.default, bool):
            if not isinstance(v, bool):
                raise ConfigError(f"{f.name} {v!r}: want true or false")
        elif type(f.default) is int:
            d[f.name] = _whole(f.name, v)
        elif type(f.default) is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{f.name} {v!r}: want a number")
            d[f.name] = float(v)
    return d


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the shape and meaning of an ADTR model."""

    input_size: int = 224
    stride: int = 16
    backbone: str = "efficientnet-b4"
    # Channels per stage, only for the random-cnn backbone (the others are fixed nets).
    cnn_channels: tuple[int, ...] = (16, 32, 64, 96)
    # Per-channel standardisation of backbone features, fitted on the training images.
    feature_norm: bool = False
    feature_clip: float = 4.0  # standardised features are clipped to [-this, this * 127/128] (feature_norm only; see FeatureNorm)
    reconstructor: str = "transformer"
    hidden: int = 256
    heads: int = 8
    ffn: int = 1024
    enc_layers: int = 4
    dec_layers: int = 4
    dropout: float = 0.1
    # False replaces the decoder's learnable queries with the encoder's output (ablation).
    query_embedding: bool = True
    # Initial positional and query embeddings: "uniform" in [0, 1) as UniAD's
    # nn.init.uniform_, or "normal" N(0, 1) as DETR's nn.Embedding. Uniform tables share
    # a large common component, so every query attends alike at first and training sits
    # on a plateau (MSE ~0.96 for ~30 epochs on real textures) before attention becomes
    # positional; normal ones are distinct from the start (README, "Backbones").
    embed_init: str = "uniform"
    conv_layers: int = 0  # only for reconstructor == "conv"; 0 means "match the transformer's budget"
    # Only for reconstructor == "memory" (the nearest-neighbour head, PatchCore-style):
    # tokens kept from the good images' features by greedy coreset selection. Each
    # token is reconstructed as its nearest memory token, so the map is its distance
    # to the memory.
    memory_size: int = 1024
    # Only for reconstructor == "memory": k > 0 divides the map by the nearest memory
    # token's neighbourhood radius, its mean distance to its k nearest memory tokens
    # relative to the memory's mean (baselines.density_weights; the local outlier
    # factor's density). 9 lifted every real-texture category (README); 0 is off.
    memory_density_k: int = 0
    # Which of the backbone's four stages (strides 2, 4, 8, 16; 1-based) feed the
    # reconstructor. Leaving the last out also drops its blocks from the graph.
    stages: tuple[int, ...] = (1, 2, 3, 4)
    # UniAD's layer-wise query: each decoder layer starts from its own learned query
    # table, attends to the encoder's memory, then to the previous layer's output
    # (UniAD models/reconstructions/uniad.py, TransformerDecoderLayer). False is
    # ADTR's single query table fed through the layers (needs query_embedding).
    layerwise_query: bool = False
    # UniAD's neighbour-masked attention: a token attends only to the n x n tokens
    # around it (7 in UniAD), in the encoder and both decoder attentions. 0 is off.
    neighbor_mask: int = 0
    pool_kernel: int = 16
    seed: int = 0

    @property
    def grid(self) -> int:
        return self.input_size // self.stride

    def validate(self) -> "ModelConfig":
        if self.backbone not in BACKBONES:
            raise ConfigError(f"backbone {self.backbone!r} unknown (choose from {', '.join(BACKBONES)})")
        if self.reconstructor not in RECONSTRUCTORS:
            raise ConfigError(f"reconstructor {self.reconstructor!r} unknown (choose from {', '.join(RECONSTRUCTORS)})")
        if self.stride not in (8, 16):
            raise ConfigError(f"stride {self.stride}: 16 (the paper's feature stride) or 8")
        if self.stride == 8 and 4 in self.stages:
            # Stage 4 sits at stride 16: it would have to be upsampled, an op the exact
            # int8 graph does not take (exact.py).
            raise ConfigError("stride 8: takes stages 1-3 only (stage 4 is at stride 16)")
        if self.input_size <= 0 or self.input_size % self.stride:
            raise ConfigError(f"input_size {self.input_size}: must be a positive multiple of stride {self.stride}")
        if self.hidden % self.heads:
            raise ConfigError(f"hidden {self.hidden} is not divisible by heads {self.heads}")
        if min(self.hidden, self.heads, self.ffn, self.enc_layers, self.dec_layers) <= 0:
            raise ConfigError("hidden, heads, ffn, enc_layers and dec_layers must be positive")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout {self.dropout}: must be in [0, 1)")
        if not 0 < self.pool_kernel <= self.input_size:
            raise ConfigError(f"pool_kernel {self.pool_kernel}: must be in (0, input_size]")
        if self.embed_init not in EMBED_INITS:
            raise ConfigError(f"embed_init {self.embed_init!r} unknown (choose from {', '.join(EMBED_INITS)})")
        if self.feature_clip <= 0:
            raise ConfigError(f"feature_clip {self.feature_clip}: must be positive")
        if not self.stages or list(self.stages) != sorted(set(self.stages)) or not set(self.stages) <= {1, 2, 3, 4}:
            raise ConfigError(f"stages {list(self.stages)}: choose distinct stages from 1..4, in increasing order")
        if self.layerwise_query and not self.query_embedding:
            raise ConfigError("layerwise_query needs query_embedding")
        if self.neighbor_mask < 0 or (self.neighbor_mask and (self.neighbor_mask % 2 == 0 or self.neighbor_mask > self.grid)):
            raise ConfigError(f"neighbor_mask {self.neighbor_mask}: 0 (off) or an odd size up to the grid's {self.grid}, such as 7")
        if self.memory_size <= 0:
            raise ConfigError(f"memory_size {self.memory_size}: must be positive")
        if self.memory_density_k < 0:
            raise ConfigError(f"memory_density_k {self.memory_density_k}: must be 0 (off) or positive")
        if self.memory_density_k and self.reconstructor != "memory":
            raise ConfigError(f"memory_density_k {self.memory_density_k}: only for reconstructor memory, not {self.reconstructor!r}")
        if self.backbone == "random-cnn" and len(self.cnn_channels) != 4:
            raise ConfigError("cnn_channels: the random-cnn backbone has exactly 4 stages")
        return self

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["cnn_channels"] = list(self.cnn_channels)
        d["stages"] = list(self.stages)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown model config keys: {', '.join(unknown)}")
        d = _numbers(cls, d)
        for key in ("cnn_channels", "stages"):
            if key in d:
                if not isinstance(d[key], (list, tuple)):
                    raise ConfigError(f"{key} {d[key]!r}: want a list of whole numbers")
                d[key] = tuple(_whole(key, v) for v in d[key])
        return cls(**d).validate()

    def fingerprint(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser schedule; paper (secondary): AdamW 1e-4, wd 1e-4, batch 16, 500 epochs, x0.1 at 400."""

    epochs: int = 500
    lr: float = 1e-4
    weight_decay: float = 1e-4
    batch: int = 16
    lr_drop_epoch: int = 400
    # ADTR+ (seed section 3.3): pseudo-Huber focal-free losses with alpha and top-k.
    plus_alpha: float = 0.003
    plus_topk: int = 20
    plus_epochs: int = 300
    # Feature jitter (UniAD's add_jitter, scale 20 there): during training, Gaussian noise
    # of std scale * ||f|| / C is added to each input token f (C channels), the target
    # stays clean, so the reconstructor must restore normal features rather than copy
    # its input. 0 turns it off (the old recipe).
    jitter: float = 0.0
    # Gradient-norm clip (UniAD: clip_max_norm 0.1); 0 turns it off.
    clip_norm: float = 0.0

    @classmethod
    def from_dict(cls, d: Any) -> "TrainConfig":
        """A checkpoint's "train" section, checked: ConfigError names the key."""
        if not isinstance(d, dict):
            raise ConfigError(f"train: want an object, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown train config keys: {', '.join(unknown)}")
        t = cls(**_numbers(cls, d))
        for key, low, strict in (("epochs", 1, False), ("batch", 1, False), ("lr_drop_epoch", 0, False), ("plus_topk", 1, False),
                                 ("plus_epochs", 1, False), ("lr", 0, True), ("weight_decay", 0, False), ("plus_alpha", 0, False),
                                 ("jitter", 0, False), ("clip_norm", 0, False)):
            v = getattr(t, key)
            if v < low or (strict and v == low):
                raise ConfigError(f"{key} {v!r}: want {'more than' if strict else 'at least'} {low}")
        return t


@dataclass(frozen=True)
class Preset:
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)


# The old default (until 2026-12): ADTR on all four Lite0 stages, 60 epochs. Kept as
# `lite0-v1` so that earlier models can be rebuilt and compared against.
_LITE0_V1 = Preset(
    ModelConfig(
        backbone="efficientnet-lite0",
        feature_norm=True,
        hidden=128,
        heads=4,
        ffn=256,
        enc_layers=2,
        dec_layers=2,
        dropout=0.0,
        embed_init="normal",
    ),
    TrainConfig(epochs=60, lr=1e-3, weight_decay=1e-4, batch=16, lr_drop_epoch=48, plus_epochs=30),
)

PRESETS: dict[str, Preset] = {
    # The default: ImageNet-pretrained EfficientNet-Lite0 (int8-friendly: ReLU6, no
    # squeeze-excitation) and the nearest-neighbour head (reconstructor "memory"): each
    # token of blocks 2b and 3b (strides 4 and 8, 24 + 40 channels, block 2b pooled to
    # stride 8 and both standardised: a 28x28 grid) is compared with a coreset of 8192
    # good tokens (about a fifth of 54 images' 42,336), and each distance is weighted by
    # its memory token's density (memory_density_k 9). Chosen by measurement on the
    # real-texture categories (README, "Detection on real surfaces"), float mean image
    # AUROC: 0.979 unweighted, against 0.968 at stride 16 with 2560 tokens, 0.962 at
    # stride 8 with 2560 and no gain with 16384; the finer grid is what finds thin
    # defects (burlap cracks 0.82 -> 0.90, scratches 0.93 -> 0.96 on average). The
    # density weight lifts every category (mean 0.979 -> 0.990; marble 0.946 -> 0.983,
    # wood 0.981 -> 0.986, where PaDiM's 0.984 had stayed above). Above PaDiM and the
    # nearest-neighbour memory on all four stages on every category, and above ADTR
    # trained as far as 2 CPU cores allow (ADTR's reconstruction stays at MSE ~0.8
    # after 60 epochs: it has not learnt the normal features, and UniAD's 1000 epochs
    # are hours per category here). Block 5c (112 of the 192 channels) carries ImageNet
    # semantics that textures do not need and dilutes thin defects; without it the
    # graph also drops blocks 4a-5c (bare Invoke 2.0-2.3x faster than lite0-v1's: README).
    # It fits in about 30 s: there is nothing to train.
    "lite0": Preset(
        replace(_LITE0_V1.model, stages=(2, 3), stride=8, reconstructor="memory", memory_size=8192, memory_density_k=9),
        _LITE0_V1.train,
    ),
    "lite0-v1": _LITE0_V1,
    # ADTR with UniAD's recipe as far as it goes on a CPU: neighbour-masked attention,
    # layer-wise queries, feature jitter and gradient clipping (each a switch, for the
    # ablation), on all four stages.
    "lite0-adtr": Preset(
        replace(_LITE0_V1.model, neighbor_mask=7, layerwise_query=True),
        replace(_LITE0_V1.train, jitter=20.0, clip_norm=0.1),
    ),
    # The paper's model: EfficientNet-B4 stages 1-4 at stride 16, 4+4 layers of width 256.
    "paper": Preset(ModelConfig()),
    # The control: a seeded random CNN (no pretrained weights), small enough to train on
    # 2 CPU cores in minutes. Near chance on real texture photos (README).
    "tiny": Preset(
        ModelConfig(
            backbone="random-cnn",
            feature_norm=True,
            hidden=64,
            heads=4,
            ffn=128,
            enc_layers=2,
            dec_layers=2,
            dropout=0.0,
        ),
        TrainConfig(epochs=150, lr=2e-3, weight_decay=1e-4, batch=16, lr_drop_epoch=120, plus_epochs=30),
    ),
}


DEFAULT_PRESET = "lite0"


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})") from None

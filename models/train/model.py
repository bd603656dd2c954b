"""The AiLive Mixer (ALM) in PyTorch: multi-rate (MR), single-rate (SR), and the DMC baseline.

One network, two halves, so training and streaming share every weight:

- the **slow half** (per F1 window): a compact log-mel CNN encoder per channel
  (weights shared across channels), then T-enc1 across channels;
- the **fast half** (per control step): RMS conditioning (linear + PReLU)
  added to the slow embedding, T-enc2 across channels, a GRU over time per
  channel, T-enc3 across channels, and an MLP 128-64-32-1 with PReLU.

Channels are the sequence of every transformer, so any count works, and a
key-padding mask keeps silent or absent channels from steering the others.
The output of control step k is the gain for frame k + 1 (zero latency): the
sequence forward here and the two exported graphs in ``export.py`` agree on
that timing, and a test holds them to 0.01 dB.

``DMC`` is the differentiable-mixing-console baseline as the paper trains it
(DMC-B-0L): the same encoder, a context that is the mean of the channel
embeddings, and an MLP (2d -> 256 -> 256 -> 1), with no memory over time.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ailive.models.alm import ACTIVE_GATE_DB, GAIN_MAX_DB, GAIN_MIN_DB, RMS_CENTRE_DB, RMS_SCALE_DB, Timing
from ailive.models.logmel import LogMelSpec, _hz_to_mel

#: Log-mel dB values are centred and scaled by these before the encoder (fixed, so level stays visible).
MEL_CENTRE_DB = -50.0
MEL_SCALE_DB = 25.0


@dataclass(frozen=True)
class AlmConfig:
    """Everything needed to rebuild a network from a checkpoint."""

    variant: str = "mr"  # "mr" | "sr" | "dmc"
    d_model: int = 128
    heads: int = 4
    ff: int = 256
    gru_hidden: int = 128
    encoder_channels: tuple[int, ...] = (8, 16, 32, 64)
    max_channels: int = 64
    spec: LogMelSpec = field(default_factory=LogMelSpec)
    residual: str = "none"  # "loudness": the gain is loudness equalisation plus a learned offset

    def __post_init__(self) -> None:
        if self.residual not in ("none", "loudness"):
            raise ValueError(f"residual is 'none' or 'loudness', got {self.residual!r}")
        if self.residual == "loudness" and self.variant == "dmc":
            raise ValueError("the loudness residual is for the ALM variants (mr, sr), not dmc")

    @property
    def timing(self) -> Timing:
        return Timing.for_variant(self.variant)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AlmConfig":
        data = dict(data)
        data["encoder_channels"] = tuple(data["encoder_channels"])
        data["spec"] = LogMelSpec(**data["spec"])
        return cls(**data)


class PatchEncoder(nn.Module):
    """(N, frames, bands) log-mel dB -> (N, d): four strided 3x3 conv blocks, then the mean over time and bands."""

    def __init__(self, channels: tuple[int, ...], d_model: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = 1
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            previous = width
        self.convs = nn.Sequential(*layers)
        self.project = nn.Linear(previous, d_model)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = (patches.to(torch.float32) - MEL_CENTRE_DB) / MEL_SCALE_DB
        x = self.convs(x.unsqueeze(1))
        return self.project(x.mean(dim=(2, 3)))


class ChannelAttention(nn.Module):
    """One pre-norm transformer encoder layer whose sequence is the channels, with a key-padding mask.

    Written out (rather than nn.TransformerEncoderLayer) so the ONNX export keeps
    the channel axis dynamic and an all-masked set stays finite (uniform attention).
    """

    def __init__(self, d_model: int, heads: int, ff: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm_attention = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff), nn.GELU(), nn.Linear(ff, d_model))

    def forward(self, x: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """x: (batch, channels, d); active: (batch, channels) bool."""
        batch, channels, d = x.shape
        head = d // self.heads
        q, k, v = self.qkv(self.norm_attention(x)).chunk(3, dim=-1)
        q, k, v = (t.reshape(batch, channels, self.heads, head).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(head)
        scores = scores + torch.where(active, 0.0, -1e4)[:, None, None, :]
        mixed = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, channels, d)
        x = x + self.out(mixed)
        return x + self.ff(self.norm_ff(x))


def bounded_gain_db(raw: torch.Tensor) -> torch.Tensor:
    """Squash the network's output smoothly into [GAIN_MIN_DB, GAIN_MAX_DB] (0 dB at raw = 0... near the middle)."""
    half = (GAIN_MAX_DB - GAIN_MIN_DB) / 2.0
    centre = (GAIN_MAX_DB + GAIN_MIN_DB) / 2.0
    return centre + half * torch.tanh((raw - centre) / half)


def patch_active(patches: torch.Tensor) -> torch.Tensor:
    """A channel is active when any frame of its patch carries more than ACTIVE_GATE_DB in all bands together.

    (..., frames, bands) dB -> (...,) bool; the numpy runtime uses the same rule (alm.patch_active).
    """
    frame_db = 10.0 * torch.log10(torch.pow(10.0, patches.to(torch.float64) / 10.0).sum(-1))
    return frame_db.amax(-1) > ACTIVE_GATE_DB


#: The loudness-equalising base gain rides in the slow embedding's last component, scaled by this.
BASE_SCALE_DB = 20.0
#: Bounds of the base gain, as the loudness automixer's (models/classic.py: cut 24 dB, boost 12 dB).
BASE_MIN_DB, BASE_MAX_DB = -24.0, 12.0
#: The learned offset on top of the base stays within this many dB.
RESIDUAL_RANGE_DB = 24.0
#: K-weighting's high shelf, roughly: bands above this get +4 dB in the level the base equalises.
SHELF_HZ, SHELF_DB = 1500.0, 4.0


def band_weights(spec: LogMelSpec) -> torch.Tensor:
    """(bands,) power weights for the base's level: a +4 dB shelf above 1.5 kHz, as BS.1770's pre-filter."""
    edges = np.linspace(_hz_to_mel(spec.fmin_hz), _hz_to_mel(spec.fmax_hz), spec.bands + 2)[1:-1]
    centres = 700.0 * np.expm1(edges / 1127.0)  # the inverse of logmel's mel scale
    return torch.from_numpy(np.where(centres > SHELF_HZ, 10.0 ** (SHELF_DB / 10.0), 1.0)).to(torch.float32)


def loudness_base_db(patches: torch.Tensor, active: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The loudness automixer's gain from the patches: every active channel to the mean level of the active ones.

    patches: (batch, channels, frames, bands) dB; active: (batch, channels) -> (batch, channels) dB, 0 where inactive.
    """
    power = (torch.pow(10.0, patches.to(torch.float32) / 10.0) * weights).sum(-1).mean(-1)
    level = 10.0 * torch.log10(power.clamp(min=1e-12))
    w = active.to(level.dtype)
    mean = (level * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp(min=1.0)
    return torch.where(active, (mean - level).clamp(BASE_MIN_DB, BASE_MAX_DB), torch.zeros_like(level))


def rms_feature(rms_db: torch.Tensor) -> torch.Tensor:
    return ((torch.clamp(rms_db, min=-100.0) - RMS_CENTRE_DB) / RMS_SCALE_DB).to(torch.float32).unsqueeze(-1)


class SlowHalf(nn.Module):
    """Encoder + T-enc1 (ALM) or encoder + mean context (DMC): one embedding per channel per F1 window."""

    def __init__(self, config: AlmConfig) -> None:
        super().__init__()
        self.variant = config.variant
        self.encoder = PatchEncoder(config.encoder_channels, config.d_model)
        self.tenc1 = ChannelAttention(config.d_model, config.heads, config.ff) if config.variant != "dmc" else None
        self.residual = config.residual == "loudness"
        self.register_buffer("band_weights", band_weights(config.spec), persistent=False)

    @property
    def width(self) -> int:
        return self.encoder.project.out_features * (2 if self.variant == "dmc" else 1)

    def forward(self, patches: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """patches: (batch, channels, frames, bands); active: (batch, channels) -> (batch, channels, width)."""
        batch, channels = patches.shape[:2]
        embedding = self.encoder(patches.flatten(0, 1)).unflatten(0, (batch, channels))
        if self.tenc1 is not None:
            embedding = self.tenc1(embedding, active)
            if self.residual:  # the base gain travels to the fast half in the last component
                base = loudness_base_db(patches, active, self.band_weights) / BASE_SCALE_DB
                embedding = torch.cat([embedding[..., :-1], base.unsqueeze(-1)], dim=-1)
            return embedding
        weights = active.to(embedding.dtype).unsqueeze(-1)
        context = (embedding * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1.0)
        return torch.cat([embedding, context.expand_as(embedding)], dim=-1)


class FastHalf(nn.Module):
    """Conditioning + T-enc2 + GRU + T-enc3 + MLP (ALM), or the DMC head (MLP on the slow embedding)."""

    def __init__(self, config: AlmConfig, slow_width: int) -> None:
        super().__init__()
        self.variant = config.variant
        d, hidden = config.d_model, config.gru_hidden
        if config.variant == "dmc":
            self.head = nn.Sequential(nn.Linear(slow_width, 256), nn.PReLU(), nn.Linear(256, 256), nn.PReLU(), nn.Linear(256, 1))
            self.state_size = 1
            return
        self.condition = nn.Sequential(nn.Linear(1, d), nn.PReLU())
        self.tenc2 = ChannelAttention(d, config.heads, config.ff)
        self.gru = nn.GRU(d, hidden, batch_first=True)
        self.tenc3 = ChannelAttention(hidden, config.heads, config.ff)
        self.head = nn.Sequential(nn.Linear(hidden, 64), nn.PReLU(), nn.Linear(64, 32), nn.PReLU(), nn.Linear(32, 1))
        self.state_size = hidden
        self.residual = config.residual == "loudness"
        if self.residual:  # starts as the loudness automixer exactly
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)

    def forward(self, slow: torch.Tensor, rms_db: torch.Tensor, active: torch.Tensor,
                state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A sequence of fast steps.

        slow: (batch, steps, channels, width) slow embedding in force at each step; rms_db, active:
        (batch, steps, channels); state: (batch, channels, hidden).  Returns gains (batch, steps, channels)
        in dB and the final state.
        """
        if self.variant == "dmc":
            return bounded_gain_db(self.head(slow).squeeze(-1)), state
        batch, steps, channels, _ = slow.shape
        x = slow + self.condition(rms_feature(rms_db))
        x = self.tenc2(x.flatten(0, 1), active.flatten(0, 1)).unflatten(0, (batch, steps))
        x = x.permute(0, 2, 1, 3).flatten(0, 1)  # (batch * channels, steps, d): time runs per channel
        x, last = self.gru(x, state.flatten(0, 1).unsqueeze(0).contiguous())
        x = x.unflatten(0, (batch, channels)).permute(0, 2, 1, 3)
        x = self.tenc3(x.flatten(0, 1), active.flatten(0, 1)).unflatten(0, (batch, steps))
        raw = self.head(x).squeeze(-1)
        state_out = last.squeeze(0).unflatten(0, (batch, channels))
        if self.residual:
            offset = RESIDUAL_RANGE_DB * torch.tanh(raw / RESIDUAL_RANGE_DB)
            return (slow[..., -1] * BASE_SCALE_DB + offset).clamp(GAIN_MIN_DB, GAIN_MAX_DB), state_out
        return bounded_gain_db(raw), state_out


class Alm(nn.Module):
    """The whole model over a segment: log-mel patches and frame RMS in, one gain per channel per control step out."""

    def __init__(self, config: AlmConfig) -> None:
        super().__init__()
        self.config = config
        self.slow = SlowHalf(config)
        self.fast = FastHalf(config, self.slow.width)

    def initial_state(self, batch: int, channels: int) -> torch.Tensor:
        return torch.zeros(batch, channels, self.fast.state_size)

    def forward(self, patches: torch.Tensor, rms_db: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Gains for a segment.

        patches: (batch, channels, slow_steps, frames, bands), the patch ending at each slow step;
        rms_db: (batch, channels, fast_steps), the RMS conditioning at each fast step;
        present: (batch, channels) bool, False for padding channels.
        Returns (batch, channels, fast_steps) gains in dB; fast step j's gain applies from the frame after it.
        """
        timing = self.config.timing
        batch, channels, slow_steps = patches.shape[:3]
        fast_steps = rms_db.shape[2]
        active = patch_active(patches) & present[:, :, None]  # (batch, channels, slow_steps)
        slow = self.slow(patches.transpose(1, 2).flatten(0, 1), active.transpose(1, 2).flatten(0, 1))
        slow = slow.unflatten(0, (batch, slow_steps))  # (batch, slow_steps, channels, width)
        which = torch.arange(fast_steps) * timing.fast_every // timing.slow_every
        gains, _ = self.fast(slow[:, which], rms_db.transpose(1, 2), active.transpose(1, 2)[:, which],
                             self.initial_state(batch, channels))
        return gains.transpose(1, 2)

"""Train an ALM (MR, SR) or the DMC baseline on rendered multitracks with bleed, on the fly.

The recipe is the paper's, adapted to our data: the produced mix (each input
channel times its predicted gain, the gain of control step k applied from
frame k + 1) is compared with the target mix by the multi-resolution STFT
distance; an auxiliary relative gain loss and an instrument-role loss on the
encoder speed up learning from scratch (no pretrained VGGish here).  Bleed,
input gains and channel counts are drawn anew for every example.

Runs on one CPU; under ``torchrun`` it becomes DistributedDataParallel (gloo on
CPU, nccl on GPU), each rank drawing its own examples.
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ailive.models.base import FRAME_S

from ailive.models.alm import HOPS_PER_FRAME
from ailive.models.errors import ModelError

from .checkpoint import load_checkpoint, save_checkpoint
from .batches import Batch, ExampleStream
from .featurebatch import BLEED_DB as FEATURE_BLEED_DB, FeatureBatch, bleed_range
from .featureloss import gain_targets, mix_logmel_loss, model_inputs, produced_power
from .features import segment_features
from .loss import mrstft_loss, relative_gain_loss
from .model import Alm, AlmConfig

CHECKPOINT = "checkpoint.pt"
LOG = "loss.csv"
WARM_UP_S = 1.0
#: The feature-domain mix loss is in dB; this puts it on the gain term's per-dB scale.
MIX_DB_SCALE = 0.1


class TrainConfigError(ModelError):
    """A training config file that cannot be used."""


@dataclass(frozen=True)
class TrainConfig:
    variant: str = "mr"
    steps: int = 3000
    batch: int = 8
    seconds: float = 6.0
    songs: int = 240
    song_seconds: float = 30.0
    seed: int = 1
    lr: float = 1e-3
    weight_decay: float = 1e-2
    mix_loss_weight: float = 1.0
    gain_loss_weight: float = 0.1  # per dB
    role_loss_weight: float = 0.1
    freeze_encoder_steps: int = 0  # keep the encoder fixed this long (useful when it starts pretrained)
    minutes: float = 0.0  # stop after this much wall-clock training (0: run all steps); the schedule follows
    checkpoint_every: int = 100
    keep_steps: tuple[int, ...] = ()  # also keep the checkpoint of these steps, as step-N.pt (to export or average later)
    workers: int = 1
    cache_dir: str = ""  # empty: the default data cache
    corpus: str = ""  # a built corpus (build_corpus): train in the feature domain on its train split
    real_share: float = 0.5  # share of feature-domain examples drawn from real songs
    bleed_db: tuple[float, float] = FEATURE_BLEED_DB  # feature-domain bleed severity range (dB under the mic's own source)
    drift_share: float = 0.0  # share of feature-domain examples with one input drifting 2-6 dB over 5-30 s (riding)
    tone_db: float = 0.0  # feature-domain mic colour per source: a tilt and a bump up to this many dB, loudness kept
    init_from: str = ""  # an exported model folder (slow.onnx, fast.onnx): start from its weights, BatchNorm frozen
    model: AlmConfig = field(default_factory=AlmConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bleed_db", bleed_range(self.bleed_db))
        object.__setattr__(self, "keep_steps", _step_list(self.keep_steps))
        if not 0.0 <= self.drift_share <= 1.0:
            raise ValueError(f"drift_share must be a share between 0 and 1; got {self.drift_share}")
        if not 0.0 <= self.tone_db <= 12.0:
            raise ValueError(f"tone_db must be between 0 and 12 dB; got {self.tone_db}")

    @classmethod
    def read(cls, path: Path | None, **overrides: object) -> "TrainConfig":
        data: dict = {}
        if path is not None:
            try:
                data = tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise TrainConfigError(f"{path}: {exc}") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainConfigError(f"{path}: unknown keys {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        model = data.pop("model", {})
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            config = cls(**data)
            variant = str(data.get("variant", config.variant))
            model_config = AlmConfig(variant=variant, **{k: tuple(v) if isinstance(v, list) else v for k, v in model.items()})
            return cls(**{**data, "model": model_config})
        except (TypeError, ValueError) as exc:
            raise TrainConfigError(f"{path}: {exc}") from None


class TrainingNetwork(nn.Module):
    """The ALM and its auxiliary role head as one module, so DistributedDataParallel keeps both in step.

    The role head names each channel's instrument role from its encoder
    embedding: an auxiliary task that teaches the encoder timbre from scratch.
    """

    def __init__(self, model: Alm, roles: int) -> None:
        super().__init__()
        self.alm = model
        self.role_head = nn.Linear(model.config.d_model, roles)

    def forward(self, patches: torch.Tensor, conditioning: torch.Tensor, present: torch.Tensor,
                role_patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gains = self.alm(patches, conditioning, present)
        if role_patches.shape[0] == 0:
            return gains, role_patches.new_zeros((0, self.role_head.out_features))
        return gains, self.role_head(self.alm.slow.encoder(role_patches))


def produced_mix(inputs: torch.Tensor, gains_db: torch.Tensor, fast_every: int, frame: int) -> torch.Tensor:
    """Sum of the channels, each scaled by the gain of the last fast step *before* its frame (zero latency).

    inputs: (batch, channels, N); gains_db: (batch, channels, fast_steps) -> (batch, N).
    Frame 0 plays at 0 dB (nothing has been predicted yet).
    """
    frames = inputs.shape[-1] // frame
    per_frame = gains_db.repeat_interleave(fast_every, dim=-1)[..., : frames - 1]
    per_frame = torch.cat([torch.zeros_like(per_frame[..., :1]), per_frame], dim=-1)
    linear = torch.pow(10.0, per_frame / 20.0).repeat_interleave(frame, dim=-1)
    return (inputs[..., : frames * frame] * linear).sum(1)


@dataclass
class StepLosses:
    total: float
    mix: float
    gain_db: float
    role: float


class Trainer:
    """Holds the model, the optimiser and the data stream; ``run`` trains with checkpoints and a loss log."""

    def __init__(self, config: TrainConfig, out: Path, *, resume: bool = True) -> None:
        self.config = config
        self.out = out
        self.rank = int(os.environ.get("RANK", "0"))
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        torch.manual_seed(config.seed + self.rank)
        self.model = Alm(config.model)
        self.roles = ExampleStream.role_names()
        self.training_network = TrainingNetwork(self.model, len(self.roles))
        self.step = 0
        self.saved_step = -1  # the step checkpoint.pt holds, so a step is never written twice
        self.optimizer = torch.optim.AdamW(self.training_network.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        checkpoint = out / CHECKPOINT
        if resume and checkpoint.exists():
            self._resume(checkpoint)
        elif config.init_from:
            self._start_from(Path(config.init_from))
        self.network: nn.Module = self.training_network
        if self.world > 1:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch.distributed.init_process_group(backend)
            self.network = nn.parallel.DistributedDataParallel(self.training_network)
        cache = Path(config.cache_dir) if config.cache_dir else None
        if config.corpus:
            from ailive.models.data.featurecorpus import load_corpus

            from .featurebatch import FeatureStream

            self.stream = FeatureStream(load_corpus(Path(config.corpus), "train"), seconds=config.seconds,
                                        batch=config.batch, seed=config.seed * 1000 + self.rank + 7919 * self.step,
                                        real_share=config.real_share, bleed_db=config.bleed_db,
                                        drift_share=config.drift_share, tone_db=config.tone_db)
            return
        self.stream = ExampleStream(cache_dir=cache, songs=config.songs, song_seconds=config.song_seconds,
                                    seconds=config.seconds, batch=config.batch, seed=config.seed * 1000 + self.rank,
                                    workers=config.workers)

    def _resume(self, path: Path) -> None:
        model, data = load_checkpoint(path)
        if model.config != self.config.model:
            raise TrainConfigError(f"{path}: was trained with another architecture; use another --out or remove it")
        self.model.load_state_dict(model.state_dict())
        if data.get("optimizer"):
            self.optimizer.load_state_dict(data["optimizer"])
        if "role_head" in data.get("training", {}):
            self.training_network.role_head.load_state_dict({k: torch.tensor(v) for k, v in data["training"]["role_head"].items()})
        self.step = int(data.get("step", 0))
        self.saved_step = self.step

    def _start_from(self, folder: Path) -> None:
        from .fromonnx import OnnxInitError, from_onnx_folder

        try:
            model = from_onnx_folder(folder)
        except OnnxInitError as exc:
            raise TrainConfigError(str(exc)) from None
        if model.config != self.config.model:
            raise TrainConfigError(f"{folder}: its architecture is not the config's ({model.config.variant}); "
                                   "set [model] to match it")
        self.model.load_state_dict(model.state_dict())

    def losses(self, batch: "Batch | FeatureBatch") -> tuple[torch.Tensor, StepLosses]:
        if isinstance(batch, FeatureBatch):
            return self.feature_losses(batch)
        config = self.config
        timing = config.model.timing
        rate = batch.sample_rate
        frame = int(round(rate * FRAME_S))
        inputs = torch.from_numpy(batch.inputs)
        patches, conditioning = segment_features(inputs, rate, timing, config.model.spec, torch.float32)
        present = torch.from_numpy(batch.present)
        keep = present & torch.from_numpy(batch.active)
        role_patches = patches[:, :, -1][keep] if config.role_loss_weight else patches.new_zeros((0,) + patches.shape[-2:])
        gains, role_logits = self.network(patches, conditioning, present, role_patches)
        warm = int(round(WARM_UP_S / FRAME_S))
        mix = produced_mix(inputs, gains, timing.fast_every, frame)
        target_mix = torch.from_numpy(batch.target_mix)[:, : mix.shape[-1]]
        mix_loss = mrstft_loss(mix[:, warm * frame:], target_mix[:, warm * frame:], rate)
        first = -(-warm // timing.fast_every)
        weight = torch.from_numpy(batch.active & present.numpy() & np.isfinite(batch.target_gain_db))
        gain_loss = relative_gain_loss(gains[..., first:], torch.from_numpy(batch.target_gain_db), weight)
        role_loss = (nn.functional.cross_entropy(role_logits, torch.from_numpy(batch.role_index)[keep])
                     if role_logits.shape[0] else torch.zeros(()))
        total = (config.mix_loss_weight * mix_loss + config.gain_loss_weight * gain_loss
                 + config.role_loss_weight * role_loss)
        return total, StepLosses(total.item(), mix_loss.item(), gain_loss.item(), role_loss.item())

    def feature_losses(self, batch: FeatureBatch) -> tuple[torch.Tensor, StepLosses]:
        """The loss in the feature domain: mix log-mel distance (dB) plus the gain and role terms."""
        config = self.config
        timing = config.model.timing
        patches, conditioning, power = model_inputs(batch, timing, config.model.spec)
        present = torch.from_numpy(batch.present)
        keep = present & torch.from_numpy(batch.active)
        role_patches = patches[:, :, -1][keep] if config.role_loss_weight else patches.new_zeros((0,) + patches.shape[-2:])
        gains, role_logits = self.network(patches, conditioning, present, role_patches)
        warm = int(round(WARM_UP_S / FRAME_S))
        mix = produced_power(power, gains, timing.fast_every)
        mix_loss = mix_logmel_loss(mix, torch.from_numpy(batch.target_power), warm * HOPS_PER_FRAME)
        first = -(-warm // timing.fast_every)
        target, weight = gain_targets(batch, timing.fast_every, gains.shape[-1])
        gain_loss = relative_gain_loss(gains[..., first:], target[..., first:], weight)
        role_loss = (nn.functional.cross_entropy(role_logits, torch.from_numpy(batch.role_index)[keep])
                     if role_logits.shape[0] else torch.zeros(()))
        total = (config.mix_loss_weight * MIX_DB_SCALE * mix_loss + config.gain_loss_weight * gain_loss
                 + config.role_loss_weight * role_loss)
        return total, StepLosses(total.item(), mix_loss.item(), gain_loss.item(), role_loss.item())

    def run(self, *, progress: bool = True) -> Path:
        config = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        log_path = self.out / LOG
        new_log = not log_path.exists() or self.step == 0
        log = log_path.open("w" if new_log else "a", newline="")
        writer = csv.writer(log)
        if new_log:
            mix_column = "mix_logmel_db" if config.corpus else "mix_mrstft"
            writer.writerow(["step", "seconds", "total", mix_column, "gain_db", "role", "lr"])
        started = time.monotonic()
        first_step = self.step
        interactive = sys.stdout.isatty()
        prefix, end = ("\r", "") if interactive else ("", "\n")
        self.model.train()
        if config.init_from:
            from .fromonnx import freeze_batchnorm

            freeze_batchnorm(self.model)
        try:
            for batch in self.stream:
                if self.step >= config.steps or self._out_of_time(started):
                    break
                frozen = self.step < config.freeze_encoder_steps
                for p in self.model.slow.encoder.parameters():
                    p.requires_grad_(not frozen)
                lr = self._lr(started)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                total, parts = self.losses(batch)
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                nn.utils.clip_grad_norm_(self.training_network.parameters(), 1.0)
                self.optimizer.step()
                self.step += 1
                elapsed = time.monotonic() - started
                if self.rank == 0:
                    writer.writerow([self.step, round(elapsed, 2), f"{parts.total:.5f}", f"{parts.mix:.5f}",
                                     f"{parts.gain_db:.4f}", f"{parts.role:.4f}", f"{lr:.2e}"])
                    log.flush()
                    if progress and (interactive or self.step % 10 == 0):
                        rate = (self.step - first_step) / max(elapsed, 1e-9)
                        eta = (config.steps - self.step) / max(rate, 1e-9)
                        if config.minutes:
                            eta = max(0.0, min(eta, config.minutes * 60.0 - elapsed))  # the last step may overrun the budget
                        print(f"{prefix}step {self.step}/{config.steps}  loss {parts.total:.4f}  "
                              f"mix {parts.mix:.4f}  gain {parts.gain_db:.2f} dB  role {parts.role:.3f}  "
                              f"eta {_clock(eta)}   ", end=end, flush=True)
                    if self.step % config.checkpoint_every == 0:
                        self.save()
                    if self.step in config.keep_steps:
                        self.keep()
        finally:
            log.close()
            self.stream.close()
        if self.rank == 0:
            if self.saved_step != self.step:
                self.save()
            if progress:
                print()
            plot_losses(log_path, self.out / "loss.png")
        return self.out / CHECKPOINT

    def _out_of_time(self, started: float) -> bool:
        return bool(self.config.minutes) and time.monotonic() - started >= self.config.minutes * 60.0

    def _lr(self, started: float) -> float:
        """Linear warm-up over 100 steps, then cosine decay to a tenth, by steps or by the time budget, whichever is further."""
        config = self.config
        if self.step < 100:
            return config.lr * (self.step + 1) / 100
        progress = (self.step - 100) / max(1, config.steps - 100)
        if config.minutes:
            progress = max(progress, (time.monotonic() - started) / (config.minutes * 60.0))
        return config.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))

    def save(self, path: Path | None = None) -> None:
        training = {"config": _plain(asdict(self.config)), "steps": self.step,
                    "role_head": {k: v.tolist() for k, v in self.training_network.role_head.state_dict().items()},
                    "roles": list(self.roles)}
        save_checkpoint(path or self.out / CHECKPOINT, self.model, optimizer=self.optimizer, step=self.step, training=training)
        if path is None:
            self.saved_step = self.step

    def keep(self) -> None:
        """Keep this step's checkpoint as step-N.pt: a copy of the one just saved, or a save of its own."""
        kept = self.out / f"step-{self.step}.pt"
        if self.saved_step == self.step:
            shutil.copyfile(self.out / CHECKPOINT, kept)
        else:
            self.save(kept)


def _step_list(steps: object) -> tuple[int, ...]:
    """``keep_steps`` as a sorted tuple of positive step numbers; ValueError when it is not one."""
    try:
        kept = tuple(sorted({int(step) for step in steps}))  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ValueError(f"keep_steps must be a list of step numbers; got {steps!r}") from None
    if kept and kept[0] < 1:
        raise ValueError(f"keep_steps must be positive step numbers; got {list(kept)}")
    return kept


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def plot_losses(log_path: Path, png: Path) -> None:
    """The loss curves (smoothed) as a PNG beside the CSV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with log_path.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    steps = np.array([int(r["step"]) for r in rows])
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    mix_key, mix_label = (("mix_logmel_db", "mix log-mel distance, dB") if "mix_logmel_db" in rows[0]
                          else ("mix_mrstft", "mix MR-STFT distance"))
    for axis, key, label in ((axes[0], mix_key, mix_label), (axes[1], "gain_db", "relative gain error, dB")):
        values = np.array([float(r[key]) for r in rows])
        width = max(1, len(values) // 50)
        smooth = np.convolve(values, np.ones(width) / width, mode="valid")
        axis.plot(steps, values, alpha=0.25, color="tab:blue")
        axis.plot(steps[width - 1:], smooth, color="tab:blue")
        axis.set_xlabel("step")
        axis.set_title(label)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)


def write_summary(out: Path, info: dict) -> None:
    (out / "summary.json").write_text(json.dumps(info, indent=2) + "\n")

"""Scoring what the faders did, and the report: the table of docs/evaluation.md as JSON, Markdown and plots.

Definitions (docs/evaluation.md has the reasoning):

- **gain error**: per control step and channel, |desk fader - target fader|
  after removing that step's common offset (the median over the counted
  channels: the mix level is the engineer's), counted from
  :data:`MEASURE_FROM_S` on, for channels active in the target whose own
  source sounded (above :data:`SOUNDING_DB`) in the last second; median
  and 90th percentile over all of them;
- **MR-STFT** (``ailive.models.mrstft``, the training loss) and **loudness
  difference** (BS.1770 via pyloudnorm, |produced - target| in LU) of the
  mix the desk would make vs the target mix, from :data:`MEASURE_FROM_S`;
- **travel** (sum of |fader moves|) and **desk writes** per armed minute;
- **settle**: after a channel enters (its source sounds after a second of
  silence, once armed), how long until every counted fader stays within
  :data:`SETTLE_DB` of where it is when the window ends (the next entry or
  :data:`SETTLE_WINDOW_S` later); the median over entries.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ailive.models.base import FRAME_S, frame_samples
from ailive.models.drift import drift_curve

from .evaluate import ARM_FADER_DB, EVAL_POLICY, Multitrack, Run

MEASURE_FROM_S = 5.0
SOUNDING_DB = -60.0
SOUNDING_WINDOW_S = 1.0
SETTLE_DB = 1.0
SETTLE_WINDOW_S = 10.0
MIN_SETTLE_WINDOW_S = 3.0
#: The keys of ``ailive eval --json``, per model.
JSON_KEYS = ("gain_error_median_db", "gain_error_p90_db", "mrstft", "loudness_diff_lu", "travel_db_per_min", "writes_per_min")


@dataclass
class ItemScore:
    item: str
    model: str
    gain_error_median_db: float
    gain_error_p90_db: float
    mrstft: float
    loudness_diff_lu: float  # produced - target, signed
    travel_db_per_min: float
    writes_per_min: float
    settle_s: list[float]
    common_offset_db: float  # median fader - target over the measured span: the model's own mix level
    errors: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # every counted |error|, dB
    travel_db: float = 0.0
    writes: int = 0
    armed_min: float = 0.0
    error_over_time_db: list = field(default_factory=list)  # [second, median |error| over that second's steps]


@dataclass
class ModelSummary:
    gain_error_median_db: float
    gain_error_p90_db: float
    mrstft: float
    loudness_diff_lu: float  # mean |produced - target| over the multitracks with a target
    travel_db_per_min: float
    writes_per_min: float
    settle_s: float  # median over every entry
    multitracks: int


def target_faders(item: Multitrack) -> np.ndarray | None:
    """Where the target puts each fader under the policy's convention: the arm-time level plus the target gain,
    less the input-power-weighted mean of the target gains (the common offset the policy itself applies)."""
    if item.target_gain_db is None:
        return None
    start = int(MEASURE_FROM_S * item.sample_rate)
    power = np.mean(np.square(item.inputs[:, start:], dtype=np.float64), axis=1)
    use = item.active & np.isfinite(item.target_gain_db)
    offset = float(np.sum(power[use] * item.target_gain_db[use]) / np.sum(power[use])) if np.sum(power[use]) > 0 else 0.0
    return np.where(use, ARM_FADER_DB + item.target_gain_db - offset, math.nan)


def drift_db(item: Multitrack, times_s: np.ndarray) -> np.ndarray:
    """(steps, C) the input drift a riding multitrack carries at each time (0 elsewhere): the ideal fader undoes it.

    The drift is in the multitrack's ``example.json`` (``ailive.models.data.realeval``): one channel, keypoints in
    seconds and dB (:func:`~ailive.models.drift.drift_curve`).
    """
    out = np.zeros((len(times_s), item.channels))
    record_path = item.channel_paths[0].parent / "example.json" if item.channel_paths else None
    if record_path is None or not record_path.is_file():
        return out
    drift = json.loads(record_path.read_text()).get("drift")
    if drift:
        out[:, int(drift["channel"])] = drift_curve(times_s, drift["times_s"], drift["db"])
    return out


def sounding(signals: np.ndarray, rate: int, steps: int) -> np.ndarray:
    """Whether each channel's signal rose above SOUNDING_DB in the second up to each control frame.  -> (steps, C)"""
    hop = frame_samples(rate)
    frames = min(steps, signals.shape[1] // hop)
    level = np.full((steps, signals.shape[0]), -np.inf)
    blocks = signals[:, : frames * hop].reshape(signals.shape[0], frames, hop)
    level[:frames] = (10 * np.log10(np.maximum(np.mean(np.square(blocks, dtype=np.float64), axis=2), 1e-30))).T
    window = max(1, int(round(SOUNDING_WINDOW_S / FRAME_S)))
    loud = level > SOUNDING_DB
    out = np.zeros_like(loud)
    for k in range(steps):
        out[k] = loud[max(0, k - window + 1):k + 1].any(axis=0)
    return out


def produced_mix(item: Multitrack, run: Run) -> np.ndarray:
    """The mix the desk makes: each step's faders applied from the next frame on, as a desk applies a move.  -> (N,)"""
    hop = frame_samples(item.sample_rate)
    frames = item.inputs.shape[1]
    linear = np.where(np.isfinite(run.faders_db), 10 ** (run.faders_db / 20), 0.0).astype(np.float32)  # (steps, C)
    arm = np.full(item.channels, 10 ** (ARM_FADER_DB / 20), dtype=np.float32)
    mix = np.empty(frames, dtype=np.float32)
    for frame, start in enumerate(range(0, frames, hop)):
        step = min(frame - 1, linear.shape[0] - 1)  # frame k plays with the faders step k-1 set
        gains = arm if step < 0 else linear[step]
        mix[start:start + hop] = gains @ item.inputs[:, start:start + hop]
    return mix


def score(item: Multitrack, run: Run) -> ItemScore:
    steps = run.faders_db.shape[0]
    times = run.times_s
    armed = times >= (run.armed_at_s if math.isfinite(run.armed_at_s) else math.inf)
    armed_min = max(float(np.sum(armed)) * FRAME_S / 60.0, 1e-9)
    moves = np.abs(np.diff(run.faders_db, axis=0))
    travel = float(np.sum(np.where(np.isfinite(moves), moves, 0.0)[armed[1:]]))
    heard = sounding(item.reference, item.sample_rate, steps) & item.active[None, :]
    measured = times - FRAME_S >= MEASURE_FROM_S
    targets = target_faders(item)
    errors = np.zeros(0)
    over_time: list = []
    offset = math.nan
    mrstft = loudness_diff = math.nan
    if targets is not None:
        deviation = run.faders_db - (targets[None, :] - drift_db(item, times))
        rows = []
        offsets = []
        seconds: list[int] = []
        for k in np.flatnonzero(measured):
            counted = heard[k] & np.isfinite(deviation[k])
            if np.sum(counted) < 2:
                continue
            common = float(np.median(deviation[k, counted]))
            offsets.append(common)
            rows.append(np.abs(deviation[k, counted] - common))
            seconds.append(int(times[k]))
        errors = np.concatenate(rows) if rows else np.zeros(0)
        over_time = [[second, round(float(np.median(np.concatenate([r for r, t in zip(rows, seconds) if t == second]))), 3)]
                     for second in sorted(set(seconds))]
        offset = float(np.median(offsets)) if offsets else math.nan
        if item.target_mix is not None:
            mrstft, loudness_diff = _mix_distance(item, run, targets)
    return ItemScore(
        item.name, run.model,
        float(np.median(errors)) if errors.size else math.nan,
        float(np.percentile(errors, 90)) if errors.size else math.nan,
        mrstft, loudness_diff, travel / armed_min, run.writes / armed_min,
        settle_times(run, heard), offset, errors, travel, run.writes, armed_min, over_time)


def _mix_distance(item: Multitrack, run: Run, targets: np.ndarray) -> tuple[float, float]:
    import pyloudnorm

    from ailive.models.mrstft import mrstft_distance

    assert item.target_mix is not None and item.target_gain_db is not None
    use = np.isfinite(targets)
    level_db = float(np.mean(targets[use] - item.target_gain_db[use]))  # the target mix at the policy's level
    target = item.target_mix * np.float32(10 ** (level_db / 20))
    start = int(MEASURE_FROM_S * item.sample_rate)
    produced = produced_mix(item, run)[start:]
    target = target[start:]
    meter = pyloudnorm.Meter(item.sample_rate)
    difference = meter.integrated_loudness(produced.astype(np.float64)) - meter.integrated_loudness(target.astype(np.float64))
    return mrstft_distance(produced, target, item.sample_rate), float(difference)


def settle_times(run: Run, heard: np.ndarray) -> list[float]:
    """Seconds the faders take to settle after each channel entry once armed (see the module doc)."""
    if not math.isfinite(run.armed_at_s):
        return []
    window = int(round(SOUNDING_WINDOW_S / FRAME_S))
    entries = []
    for k in range(window, heard.shape[0]):
        if run.times_s[k] - FRAME_S < run.armed_at_s + SOUNDING_WINDOW_S:
            continue
        for ch in np.flatnonzero(heard[k] & ~heard[k - 1]):
            if not heard[max(0, k - window):k, ch].any():
                entries.append(k)
                break
    out = []
    for n, k in enumerate(entries):
        end = min(entries[n + 1] if n + 1 < len(entries) else heard.shape[0], k + int(SETTLE_WINDOW_S / FRAME_S))
        if (end - k) * FRAME_S < MIN_SETTLE_WINDOW_S:
            continue
        faders = run.faders_db[k:end][:, heard[end - 1]]
        final = faders[-1]
        away = np.any(np.abs(np.nan_to_num(faders - final, nan=0.0)) > SETTLE_DB, axis=1)
        last_away = int(np.flatnonzero(away)[-1]) + 1 if away.any() else 0
        out.append(last_away * FRAME_S)
    return out


def summarise(scores: list[ItemScore]) -> ModelSummary:
    errors = np.concatenate([s.errors for s in scores]) if scores else np.zeros(0)
    minutes = sum(s.armed_min for s in scores)
    settles = [t for s in scores for t in s.settle_s]
    with_target = [s for s in scores if math.isfinite(s.mrstft)]
    return ModelSummary(
        gain_error_median_db=float(np.median(errors)) if errors.size else math.nan,
        gain_error_p90_db=float(np.percentile(errors, 90)) if errors.size else math.nan,
        mrstft=float(np.mean([s.mrstft for s in with_target])) if with_target else math.nan,
        loudness_diff_lu=float(np.mean([abs(s.loudness_diff_lu) for s in with_target])) if with_target else math.nan,
        travel_db_per_min=sum(s.travel_db for s in scores) / minutes if minutes else math.nan,
        writes_per_min=sum(s.writes for s in scores) / minutes if minutes else math.nan,
        settle_s=float(np.median(settles)) if settles else math.nan,
        multitracks=len(scores),
    )


# ----- the report ------------------------------------------------------------------------------


def _number(value: float, digits: int = 2) -> float | None:
    return round(float(value), digits) if math.isfinite(value) else None


def json_object(summaries: dict[str, ModelSummary]) -> dict[str, object]:
    """What ``ailive eval --json`` prints: the six headline numbers per model."""
    return {"models": {name: {key: _number(getattr(s, key), 3) for key in JSON_KEYS} for name, s in summaries.items()}}


def markdown_table(summaries: dict[str, ModelSummary], set_name: str) -> str:
    def cell(value: float, digits: int = 2) -> str:
        return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"

    lines = [
        f"Evaluation on {set_name} ({max((s.multitracks for s in summaries.values()), default=0)} multitracks, "
        f"streamed through the bridge: policy bounds opened, motion rules as shipped)",
        "",
        "| model | gain error median (dB) | gain error p90 (dB) | MR-STFT | loudness diff (LU) | travel (dB/min) | writes/min | settle (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summaries.items():
        lines.append(f"| {name} | {cell(s.gain_error_median_db)} | {cell(s.gain_error_p90_db)} | {cell(s.mrstft, 3)} | "
                     f"{cell(s.loudness_diff_lu)} | {cell(s.travel_db_per_min, 1)} | {cell(s.writes_per_min, 1)} | {cell(s.settle_s, 1)} |")
    return "\n".join(lines) + "\n"


def write_report(out: Path, set_name: str, items: list[Multitrack], runs: dict[str, dict[str, Run]],
                 scores: dict[str, list[ItemScore]], summaries: dict[str, ModelSummary]) -> dict[str, Path]:
    """results.json, results.md and one plot per multitrack in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(exist_ok=True)
    table = markdown_table(summaries, set_name)
    (out / "results.md").write_text(table)
    record = {
        **json_object(summaries),
        "set": set_name,
        "policy": {**asdict(EVAL_POLICY), "arm_fader_db": ARM_FADER_DB},
        "settle_s": {name: _number(s.settle_s) for name, s in summaries.items()},
        "multitracks": {
            item.name: {name: {k: (_number(v, 3) if isinstance(v, float) else v) for k, v in asdict(sc).items()
                               if k not in ("errors", "item", "model", "settle_s")} | {"settle_s": [_number(t) for t in sc.settle_s]}
                        for name in scores for sc in scores[name] if sc.item == item.name}
            for item in items
        },
    }
    (out / "results.json").write_text(json.dumps(record, indent=1))
    plots = {}
    for item in items:
        path = out / "plots" / f"{item.name}.png"
        plot_item(path, item, {name: runs[name][item.name] for name in runs if item.name in runs[name]},
                  {name: sc for name in scores for sc in scores[name] if sc.item == item.name})
        plots[item.name] = path
    return {"json": out / "results.json", "markdown": out / "results.md", **{f"plot {k}": v for k, v in plots.items()}}


def plot_item(path: Path, item: Multitrack, runs: dict[str, Run], scores: dict[str, ItemScore]) -> None:
    """Target (dashed) vs produced (solid) fader curves, one panel per model, for an engineer to look at."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = target_faders(item)
    figure, axes = plt.subplots(len(runs), 1, figsize=(11, 2.6 * len(runs) + 0.6), dpi=90, sharex=True, squeeze=False)
    colours = plt.get_cmap("tab10")
    for axis, (name, run) in zip(axes[:, 0], runs.items()):
        shift = scores[name].common_offset_db if name in scores and math.isfinite(scores[name].common_offset_db) else 0.0
        for ch, path_ in enumerate(item.channel_paths):
            label = path_.stem
            axis.plot(run.times_s, np.maximum(run.faders_db[:, ch], -70.0), color=colours(ch % 10), linewidth=1.2, label=label)
            if targets is not None and math.isfinite(targets[ch]):
                axis.axhline(targets[ch] + shift, color=colours(ch % 10), linestyle="--", linewidth=0.9)
        if math.isfinite(run.armed_at_s):
            axis.axvline(run.armed_at_s, color="grey", linestyle=":", linewidth=1)
        score_ = scores.get(name)
        detail = (f"gain error median {score_.gain_error_median_db:.1f} dB, p90 {score_.gain_error_p90_db:.1f} dB"
                  if score_ is not None and math.isfinite(score_.gain_error_median_db) else "no target")
        axis.set_title(f"{name}: {detail}" + (f" (targets shifted {shift:+.1f} dB: its mix level)" if shift else ""), fontsize=9)
        axis.set_ylabel("fader (dB)")
        axis.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    axes[-1, 0].set_xlabel("time (s); solid: the desk's faders, dashed: the target balance")
    figure.suptitle(f"{item.name}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)

"""Streaming ALM inference with ONNX Runtime only: the slow graph every F1 hop, the fast graph every control step.

A model folder holds ``card.json``, ``slow.onnx`` and ``fast.onnx`` (see
``models/train/export.py``).  Loading checks the card against the graphs
(files, checksums, input and output names and widths) and refuses anything
that does not fit with one clear message.  At run time the model never emits
a non-finite gain: a channel whose audio is not finite, or that is silent,
gets "no opinion" (NaN, which the safety policy turns into a hold) and its
memory is left untouched.

One intra-op thread per session: the other core belongs to JACK.

The slow graph (every 6th frame for ALM-MR, the control step's p99 spike)
can run on a worker thread (``AILIVE_SLOW_GRAPH=worker``, or
``slow_on_worker=True``): ONNX Runtime releases the GIL while it runs, so the
control step that starts it returns at once, and its embedding is taken up
from the next frame, the worker having had the idle rest of a frame. The
models were trained with the embedding on its own frame, and on the held-out
set that one frame costs ALM-MR 0.2 dB of median gain error (README, Benchmarks),
so inline is the default.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .alm import ACTIVE_GATE_DB, GAIN_MAX_DB, GAIN_MIN_DB, Timing, conditioning_db
from .base import FRAME_S, ModelCard
from .errors import ModelError
from .logmel import LogMelSpec, LogMelState, StreamingLogMel, UnsupportedRateError

CARD_FILE = "card.json"
CARD_FORMAT = "ailive-alm"
CARD_VERSION = 1
SLOW_INPUTS = ("patches", "active")
FAST_INPUTS = ("slow", "rms_db", "active", "state")
#: A channel that was heard, then silent this long, then active again is treated as re-patched: its memory starts afresh.
REJOIN_AFTER_S = 2.0
#: Where the slow graph runs unless the caller says: ``inline`` (on its own frame) or ``worker`` (taken up a frame later).
SLOW_GRAPH_ENV = "AILIVE_SLOW_GRAPH"


class ModelLoadError(ModelError):
    """A model folder that cannot be used, with the reason."""


class ModelStreamError(ModelError):
    """The stream does not fit the model (rate, channel count)."""


@dataclass(frozen=True)
class AlmCard:
    """The parts of ``card.json`` the runtime needs; the rest (training data, metrics) is for people."""

    name: str
    variant: str
    description: str
    timing: Timing
    spec: LogMelSpec
    slow_width: int
    state_size: int
    min_channels: int
    max_channels: int
    gain_range_db: tuple[float, float]  # the gains the graph was trained and bounded to give
    graphs: dict[str, str]
    sha256: dict[str, str]
    raw: dict

    @classmethod
    def read(cls, folder: Path) -> "AlmCard":
        path = folder / CARD_FILE
        if not folder.is_dir():
            raise ModelLoadError(f"model folder {folder} does not exist")
        if not path.is_file():
            raise ModelLoadError(f"{path}: missing; a model folder needs {CARD_FILE}, slow.onnx and fast.onnx")
        try:
            raw = json.loads(path.read_text())
            if raw.get("format") != CARD_FORMAT:
                raise ModelLoadError(f"{path}: format {raw.get('format')!r} is not {CARD_FORMAT!r}")
            if raw.get("version") != CARD_VERSION:
                raise ModelLoadError(f"{path}: card version {raw.get('version')!r} is not supported (expected {CARD_VERSION})")
            if float(raw["frame_s"]) != FRAME_S:
                raise ModelLoadError(f"{path}: frame_s {raw['frame_s']} does not match the bridge's {FRAME_S} s control frame")
            return cls(
                name=str(raw["name"]), variant=str(raw["variant"]), description=str(raw.get("description", "")),
                timing=Timing(int(raw["slow_every"]), int(raw["fast_every"])),
                spec=_spec(raw["features"]),
                slow_width=int(raw["slow_width"]), state_size=int(raw["state_size"]),
                min_channels=int(raw["channels"]["min"]), max_channels=int(raw["channels"]["max"]),
                gain_range_db=_gain_range(path, raw["gain_range_db"]),
                graphs={k: str(v) for k, v in raw["graphs"].items()},
                sha256={k: str(v) for k, v in raw["sha256"].items()}, raw=raw)
        except ModelLoadError:
            raise
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{path}: missing or malformed entry ({exc})") from None


def _gain_range(path: Path, entry: list) -> tuple[float, float]:
    """The card's gain range, which must lie within what the bridge maps onto faders."""
    low, high = (float(v) for v in entry)
    if not GAIN_MIN_DB <= low < high <= GAIN_MAX_DB:
        raise ModelLoadError(f"{path}: gain_range_db [{low:g}, {high:g}] is not within the bridge's "
                             f"[{GAIN_MIN_DB:g}, {GAIN_MAX_DB:g}] dB")
    return low, high


def _spec(features: dict) -> LogMelSpec:
    """The card's feature parameters, each converted to the type the default has (a string for a number fails)."""
    default = LogMelSpec()
    return LogMelSpec(**{key: type(getattr(default, key))(value) for key, value in features.items()})


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own classes for bad files, opsets and types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path}: ONNX Runtime cannot load it: {first_line}") from None


def _check_io(session, path: Path, inputs: tuple[str, ...], widths: dict[str, int]) -> None:
    names = tuple(i.name for i in session.get_inputs())
    if names != inputs:
        raise ModelLoadError(f"{path}: inputs {names} do not match the card (expected {inputs})")
    shapes = {i.name: i.shape for i in list(session.get_inputs()) + list(session.get_outputs())}
    for name, width in widths.items():
        last = shapes.get(name, [None])[-1]
        if isinstance(last, int) and last != width:
            raise ModelLoadError(f"{path}: {name} has width {last}, the card says {width}")


@dataclass
class AlmState:
    """Everything the model remembers about a stream, per channel."""

    extractor: StreamingLogMel  # the log-mel at this stream's sample rate
    features: LogMelState
    gru: np.ndarray  # (channels, state_size) float32
    slow: np.ndarray  # (channels, slow_width) float32, the latest slow embedding
    active: np.ndarray  # (channels,) bool, from the latest slow step
    mean_squares: np.ndarray  # (channels, fast_every) the frames since the last fast step
    gains: np.ndarray  # (channels,) the latest fast step's gains, NaN where no opinion
    silent_frames: np.ndarray  # (channels,) frames since the channel was last active
    heard: np.ndarray  # (channels,) bool: the channel has been active at least once
    step: int = 0
    pending: Future | None = None  # a slow step's embedding still on the worker


class AlmRuntime:
    """An exported ALM model behind the gain-model interface; the state is updated in place and returned."""

    def __init__(self, folder: Path | str, slow_on_worker: bool | None = None) -> None:
        self.folder = Path(folder)
        self._worker: ThreadPoolExecutor | None = None
        self.spec_card = AlmCard.read(self.folder)
        for role in ("slow", "fast"):
            file = self.spec_card.graphs.get(role)
            if file is None:
                raise ModelLoadError(f"{self.folder / CARD_FILE}: no {role} graph named")
            path = self.folder / file
            if not path.is_file():
                raise ModelLoadError(f"{path}: missing ({role} graph)")
            expected = self.spec_card.sha256.get(role)
            if expected is not None and file_sha256(path) != expected:
                raise ModelLoadError(f"{path}: checksum does not match the card; the file is damaged or from another model")
        self._slow = _session(self.folder / self.spec_card.graphs["slow"])
        self._fast = _session(self.folder / self.spec_card.graphs["fast"])
        _check_io(self._slow, self.folder / self.spec_card.graphs["slow"], SLOW_INPUTS, {"slow": self.spec_card.slow_width})
        _check_io(self._fast, self.folder / self.spec_card.graphs["fast"], FAST_INPUTS,
                  {"slow": self.spec_card.slow_width, "state": self.spec_card.state_size})
        self.card = ModelCard(self.spec_card.name, self.spec_card.description or f"ALM-{self.spec_card.variant.upper()}",
                              *self.spec_card.gain_range_db)
        timing = self.spec_card.timing
        # Deferred by one frame only where a fast step runs on the next frame to take it up (ALM-MR); where
        # the fast step waits as long as the slow one (SR, DMC), deferring would cost a whole slow period.
        wanted = _slow_on_worker_from_env() if slow_on_worker is None else slow_on_worker
        self.slow_on_worker = wanted and timing.fast_every < timing.slow_every

    @property
    def timing(self) -> Timing:
        return self.spec_card.timing

    def initial_state(self, channels: int, sample_rate: int) -> AlmState:
        card = self.spec_card
        if not card.min_channels <= channels <= card.max_channels:
            raise ModelStreamError(f"model {card.name} takes {card.min_channels}..{card.max_channels} channels; "
                                   f"this show analyses {channels}")
        try:
            extractor = StreamingLogMel(sample_rate, card.spec, dtype=np.float32)
        except UnsupportedRateError as exc:
            raise ModelStreamError(f"model {card.name}: {exc}") from None
        return AlmState(
            extractor=extractor,
            features=extractor.initial_state(channels),
            gru=np.zeros((channels, card.state_size), np.float32),
            slow=np.zeros((channels, card.slow_width), np.float32),
            active=np.zeros(channels, bool),
            mean_squares=np.zeros((channels, card.timing.fast_every)),
            gains=np.full(channels, np.nan),
            silent_frames=np.zeros(channels, int),
            heard=np.zeros(channels, bool),
        )

    def reset_channels(self, state: AlmState, channels: np.ndarray | list[int]) -> None:
        """Forget what the model remembers of these channels (a re-patched input is a new source)."""
        index = np.asarray(channels, dtype=int)
        state.gru[index] = 0.0
        state.gains[index] = np.nan

    def step(self, state: AlmState, frame: np.ndarray) -> tuple[np.ndarray, AlmState]:
        timing = self.spec_card.timing
        frame = np.asarray(frame, dtype=np.float32)
        finite = np.all(np.isfinite(frame), axis=1)
        if not finite.all():
            frame = np.where(finite[:, None], frame, np.float32(0.0))
        state.extractor.push(state.features, frame)
        state.mean_squares = np.roll(state.mean_squares, -1, axis=1)
        state.mean_squares[:, -1] = np.mean(np.square(frame), axis=1, dtype=np.float64)
        if state.pending is not None:
            self._take_slow(state)
        if state.step % timing.slow_every == 0:
            self._start_slow(state)
        if state.step % timing.fast_every == 0:
            self._run_fast(state)
        state.step += 1
        gains = np.where(state.active & finite, state.gains, np.nan)
        return gains, state

    def _start_slow(self, state: AlmState) -> None:
        """This frame's activity, at once; its slow embedding on the worker, or inline (then done when this returns)."""
        patches = state.extractor.patch(state.features).astype(np.float32, copy=False)
        active = state.extractor.active(state.features, ACTIVE_GATE_DB)
        frames_per_slow = self.spec_card.timing.slow_every
        rejoining = active & state.heard & (state.silent_frames * FRAME_S >= REJOIN_AFTER_S)
        if rejoining.any():
            self.reset_channels(state, np.flatnonzero(rejoining))
        state.silent_frames = np.where(active, 0, state.silent_frames + frames_per_slow)
        state.active = active
        state.heard |= active
        inputs = {"patches": patches, "active": active}
        if not self.slow_on_worker:
            (state.slow,) = self._slow.run(None, inputs)
            return
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ailive-{self.spec_card.name}-slow")
        state.pending = self._worker.submit(self._slow.run, None, inputs)

    def _take_slow(self, state: AlmState) -> None:
        """The slow step's embedding becomes the model's (waiting for the worker only if it is late)."""
        embedding, state.pending = state.pending, None
        (state.slow,) = embedding.result()  # type: ignore[union-attr]

    def _run_fast(self, state: AlmState) -> None:
        rms = conditioning_db(state.mean_squares).astype(np.float32)
        gains, new_state = self._fast.run(None, {"slow": state.slow, "rms_db": rms, "active": state.active,
                                                 "state": state.gru})
        good = np.isfinite(gains) & np.all(np.isfinite(new_state), axis=1)
        state.gru = np.where(good[:, None], new_state, state.gru).astype(np.float32)
        state.gains = np.where(good, np.clip(gains.astype(np.float64), *self.spec_card.gain_range_db), np.nan)


def _slow_on_worker_from_env() -> bool:
    where = os.environ.get(SLOW_GRAPH_ENV, "inline").strip().lower()
    if where not in ("inline", "worker"):
        raise ModelLoadError(f"{SLOW_GRAPH_ENV} must be 'inline' or 'worker', not {where!r}")
    return where == "worker"


def is_model_folder(path: Path) -> bool:
    return (path / CARD_FILE).is_file()


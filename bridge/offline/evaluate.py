"""``ailive eval``: every model through the bridge's own streaming path, on the same multitracks, scored one way.

For each multitrack and model, the real pieces run as in a show, on the
file's clock: ``FileSource`` -> ``Engine`` (``model.step`` per 50 ms frame ->
``bridge.policy``) -> ``OscDeskDriver`` -> a ``DeskSimulator`` over loopback,
whose faders (quantized by the desk's fader law) are read after every step
and applied to the **next** frame of audio, as a desk would. Nothing is
computed offline from the model's raw gains.

The policy is the shipped one with its bounds opened (:data:`EVAL_POLICY`,
docs/evaluation.md says why) so the scores measure the model's gains and the
shipped motion rules, not the show's safety window. The metrics, the table
and the plots are in :mod:`.evalreport`.
"""
from __future__ import annotations

import asyncio
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ailive.consoles.errors import AiliveError
from ailive.consoles.profile import get_profile
from ailive.consoles.show import ChannelMap, DeskAddress
from ailive.consoles.sim import DeskSimulator
from ailive.models.base import FRAME_S, GainModel, ModelCard

from ..audio import AUDIO_SUFFIXES, FileSource
from ..journal import Journal
from ..policy_settings import PolicySettings
from ..rig import open_rig
from ..show import Show

log = logging.getLogger(__name__)

#: The shipped policy with its bounds opened: a +-40 dB window and the desk's +10 dB top instead of the
#: show defaults (+-6 dB, +5 dB ceiling, 3 dB total-gain cap), slew 12/24 dB/s instead of 3/6 so a model
#: reaches its balance within the read-in; deadband, minimum step and write rate as shipped.
EVAL_POLICY = PolicySettings(window_db=40.0, ceiling_db=10.0, total_gain_cap_db=20.0, slew_up_db_per_s=12.0,
                             slew_down_db_per_s=24.0)
#: Where every fader stands when the bridge arms: low enough that a channel 30 dB down can be brought up under +10 dB.
ARM_FADER_DB = -20.0
#: Seconds of audio the bridge hears before it arms.
READ_IN_S = 1.0
DESK = "x32"
MIX_NAMES = ("mix", "reference", "reference-mix")


class EvalError(AiliveError):
    """The evaluation cannot run as asked (an unknown model, an unusable folder)."""


@dataclass(frozen=True)
class Multitrack:
    """One multitrack to evaluate: the files the bridge plays, and what it should arrive at when known."""

    name: str
    channel_paths: tuple[Path, ...]
    sample_rate: int
    inputs: np.ndarray  # (C, N) what the desk hears
    reference: np.ndarray  # (C, N) each channel's own source when known (direct), else the inputs
    target_gain_db: np.ndarray | None  # (C,) NaN where inactive; None without a target
    target_mix: np.ndarray | None  # (N,) at target_gain_db
    active: np.ndarray  # (C,) bool
    roles: tuple[str, ...]

    @property
    def channels(self) -> int:
        return int(self.inputs.shape[0])


@dataclass(frozen=True)
class Run:
    """What the desk's faders did while one model rode one multitrack."""

    model: str
    times_s: np.ndarray  # (steps,) when each step's faders start to apply (the next frame)
    faders_db: np.ndarray  # (steps, C) as the desk holds them
    armed_at_s: float
    writes: int
    wall_s: float


@dataclass
class OracleModel:
    """Proposes the target gains themselves: the check that the metrics are right (it should score ~0)."""

    gains_db: np.ndarray
    card: ModelCard = ModelCard("oracle", "the target balance's own gains", -90.0, 90.0)

    def initial_state(self, channels: int, sample_rate: int) -> None:
        if channels != self.gains_db.shape[0]:
            raise ValueError(f"the oracle knows {self.gains_db.shape[0]} channels, the stream has {channels}")

    def step(self, state: None, frame: np.ndarray) -> tuple[np.ndarray, None]:
        return self.gains_db.copy(), state


def load_models(names: list[str]) -> dict[str, GainModel | None]:
    """Every named model, loaded once before anything runs (None stands for the per-multitrack oracle)."""
    from ailive.models.registry import load_model

    models: dict[str, GainModel | None] = {}
    for name in names:
        if name == "oracle":
            models[name] = None
            continue
        try:
            models[name] = load_model(name)
        except Exception as exc:  # unknown names and unloadable model folders alike: one line
            raise EvalError(f"model {name!r}: {exc}") from None
    return models


def eval_show(item: Multitrack) -> Show:
    """The show an evaluation streams through: every file on its own channel of the desk simulator (its address set by the rig)."""
    profile = get_profile(DESK)
    if item.channels > profile.channels:
        raise EvalError(f"{item.name} has {item.channels} channels; the {DESK} simulator has {profile.channels}")
    channels = tuple(ChannelMap(desk_channel=i + 1, port=f"eval:{i + 1}", name=path.stem[:12])
                     for i, path in enumerate(item.channel_paths))
    return Show("<eval>", "eval", profile, DeskAddress("127.0.0.1", 0), False, channels, EVAL_POLICY)


async def stream(item: Multitrack, model: GainModel, journal_dir: Path) -> Run:
    """Play ``item`` through the engine against a simulator; the faders the desk held after each step."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    source = FileSource(list(item.channel_paths), realtime=False)
    show = eval_show(item)

    def arm_time_faders(desk: DeskSimulator, show: Show) -> None:
        for c in show.channels:
            desk.move_fader_db(c.desk_channel, ARM_FADER_DB)  # the engineer's arm-time faders, before the bridge connects
            desk.release_fader(c.desk_channel)

    times: list[float] = []
    faders: list[list[float]] = []
    armed_at = math.nan
    journal = Journal(journal_dir, f"eval-{model.card.name}")
    async with open_rig(show, source, model, journal, simulated=True, prepare_desk=arm_time_faders) as rig:
        engine, driver, desk, show = rig.engine, rig.driver, rig.desk, rig.show
        assert desk is not None

        async def on_step(elapsed_s: float) -> None:
            nonlocal armed_at
            await driver.sync()  # the desk has every write of this step before the next frame plays
            times.append(elapsed_s + FRAME_S)
            faders.append([desk.fader_db(c.desk_channel) for c in show.channels])
            if math.isnan(armed_at) and engine.state.armed:
                armed_at = elapsed_s

        await engine.run(arm_after_s=READ_IN_S, on_step=on_step)
    writes = desk.stats.total_writes()
    return Run(model.card.name, np.asarray(times), np.asarray(faders, dtype=np.float64), armed_at, writes,
               loop.time() - began)


def run_all(items: list[Multitrack], names: list[str],
            progress: Callable[[str], None] = lambda _: None) -> dict[str, dict[str, Run]]:
    """{model: {item name: Run}} for every model on every item (the oracle only where there is a target)."""
    models = load_models(names)
    runs: dict[str, dict[str, Run]] = {name: {} for name in names}
    with tempfile.TemporaryDirectory(prefix="ailive-eval-") as journals:
        for item in items:
            for name, loaded in models.items():
                model = loaded
                if model is None:
                    if item.target_gain_db is None:
                        log.info("%s has no target: the oracle skips it", item.name)
                        continue
                    model = OracleModel(item.target_gain_db)
                run = asyncio.run(stream(item, model, Path(journals)))
                runs[name][item.name] = run
                progress(f"{name:>10} {item.name}: {run.writes} desk writes, {run.wall_s:.1f} s")
    return runs


# ----- what to evaluate ----------------------------------------------------------------------


def load_items(spec: str, cache_dir: Path | None = None) -> tuple[str, list[Multitrack]]:
    """``heldout`` (written on first use), a held-out-style folder, one folder of per-channel files, or a folder of them."""
    from ailive.models.data import heldout

    if spec == "heldout":
        folder = heldout.ensure_heldout(cache_dir)
    else:
        folder = Path(spec)
        if not folder.is_dir():
            raise EvalError(f"--set {spec}: no such folder (give 'heldout' or a folder of per-channel WAV/FLAC files)")
    if (folder / heldout.MANIFEST).is_file():
        try:
            return folder.name, [example_item(f) for f in heldout.verify(folder)]  # the set's id, not where it is cached
        except heldout.HeldoutError as exc:
            raise EvalError(str(exc)) from None
    if (folder / "example.json").is_file():
        return str(folder), [example_item(folder)]
    if _audio_files(folder):
        return str(folder), [recorded_item(folder)]
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and ((p / "example.json").is_file() or _audio_files(p)))
    if not subfolders:
        raise EvalError(f"{folder}: no .wav or .flac files, no example folders")
    return str(folder), [example_item(p) if (p / "example.json").is_file() else recorded_item(p) for p in subfolders]


def example_item(folder: Path) -> Multitrack:
    """A folder written by :func:`ailive.models.data.heldout.write_example`."""
    from ailive.models.data.heldout import channel_names, read_example

    example = read_example(folder)
    paths = tuple(folder / f"{n}.flac" for n in channel_names(example.roles))
    return Multitrack(folder.name, paths, example.sample_rate, example.inputs, example.direct, example.target_gain_db,
                      example.target_mix, example.active, example.roles)


def _audio_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES), key=lambda p: p.name)


def recorded_item(folder: Path) -> Multitrack:
    """Real per-channel recordings; a file named ``mix`` (or ``reference``) is the reference mix, not a channel.

    The target gains are then fitted to that mix (:func:`ailive.models.data.mixfit.fit_gains`);
    without one, only the stability metrics can be scored.
    """
    from ailive.models.data.mixfit import fit_gains

    files = _audio_files(folder)
    mixes = [p for p in files if p.stem.lower() in MIX_NAMES or p.stem.upper().endswith("_MIX")]
    channels = [p for p in files if p not in mixes]
    if len(mixes) > 1:
        raise EvalError(f"{folder}: more than one reference mix ({', '.join(p.name for p in mixes)})")
    if len(channels) < 2:
        raise EvalError(f"{folder}: {len(channels)} channel file(s); a multitrack needs at least 2")
    signals, rate = _read_equal(channels + mixes)
    inputs = signals[: len(channels)]
    active = np.sqrt(np.mean(np.square(inputs, dtype=np.float64), axis=1)) > 10 ** (-60 / 20)
    gains = mix = None
    if mixes:
        mix = signals[-1]
        gains = fit_gains(inputs, mix)
        active &= np.isfinite(gains)
        gains = np.where(active, gains, math.nan)
    return Multitrack(folder.name, tuple(channels), rate, inputs, inputs, gains, mix, active,
                      tuple("" for _ in channels))


def _read_equal(paths: list[Path]) -> tuple[np.ndarray, int]:
    """Mono files of one rate and one length, or an :class:`EvalError` naming the odd one out."""
    import soundfile as sf

    infos = []
    for path in paths:
        try:
            infos.append(sf.info(str(path)))
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise EvalError(f"{path}: cannot read audio ({exc})") from None
    for path, info in zip(paths, infos):
        if info.channels != 1:
            raise EvalError(f"{path}: {info.channels} channels; give one mono file per desk channel")
        if info.samplerate != infos[0].samplerate:
            raise EvalError(f"{path} is {info.samplerate} Hz but {paths[0].name} is {infos[0].samplerate} Hz; one rate per multitrack")
        if info.frames != infos[0].frames:
            raise EvalError(f"{path} has {info.frames} samples but {paths[0].name} has {infos[0].frames}; "
                            f"the files of a multitrack must be the same length")
    return np.stack([sf.read(str(p), dtype="float32")[0] for p in paths]), int(infos[0].samplerate)

"""Soak: a 60-minute show on a virtual clock (in make test), and 10 minutes in real time (make soak).

The virtual show runs the whole engine (a synthetic band, the loudness
model, the policy, the journal) against a virtual desk on the audio's own
clock, with a seeded engineer who moves faders, mutes channels and switches
them to manual, channel dropouts, broken inputs (DC, clipping), desk
restarts (state kept or reset), audio stalls and one kill and re-arm. Every
move is checked the moment it is made; memory, the journal and the desk are
checked at the end.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ailive.bridge.engine import Engine
from ailive.bridge.journal import Journal, read_records
from ailive.models.registry import load_model
from tests.jackserver import JackPlayer
from tests.signals import noise_channels
from tests.test_telemetry import watching

from .audio import SyntheticSource
from .ledger import audit, journal_last
from .restless import RestlessModel
from .rig import EXAMPLE, HOT_KICK, example_show, recording_desk
from .showscript import ShowScript
from .virtualdesk import VirtualDesk
from .watch import Watch


def rss_bytes(pid: int | str = "self") -> int:
    """Resident memory of a process, from /proc."""
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


@dataclass
class SoakResult:
    minutes: float
    watch: Watch
    script: ShowScript
    desk: VirtualDesk
    journal: Path
    rss_warm: int
    rss_end: int
    steps: int
    model: str
    model_errors: int


async def run_virtual_show(tmp_path: Path, minutes: float, seed: int = 1, model: str = "restless") -> SoakResult:
    show = example_show(0)
    source = SyntheticSource(HOT_KICK, realtime=False, seed=seed)
    desk = VirtualDesk(show.profile, show.desk_channels, source.clock)
    journal = Journal(tmp_path / "journal", show.name, wall_clock=source.clock)
    journal.open()
    gains = RestlessModel(seed) if model == "restless" else load_model(model)
    engine = Engine(show, source, desk, gains, journal, clock=source.clock)
    watch = Watch(engine, desk, source.clock)
    script = ShowScript(desk, source, engine, seed=seed, kill_at_s=minutes * 60 * 0.75)
    warm: list[int] = []

    async def on_step(elapsed_s: float) -> None:
        await script(elapsed_s)
        if not warm and elapsed_s >= min(600.0, minutes * 60 / 6):  # warm: ten minutes in (a sixth of a short run)
            warm.append(rss_bytes())

    await source.start()
    try:
        status = await engine.run(duration_s=minutes * 60, arm_after_s=2.0, on_step=on_step)
    finally:
        journal.close()
    return SoakResult(minutes, watch, script, desk, journal.path, warm[0], rss_bytes(), status.steps, model,
                      status.model_errors)


def check_soak(result: SoakResult) -> None:
    watch, desk = result.watch, result.desk
    assert not watch.broken, (watch.broken, watch.first_broken)
    assert watch.moves > 1000 and result.script.done["engineer"] > 5 and result.script.done["restart"] >= 1
    assert watch.kill_moves > 0
    # the journal is complete: every move and every change the desk reported is in it, and its last word is the desk
    records = read_records(result.journal)
    counted = {kind: sum(1 for r in records if r["kind"] == kind) for kind in ("move", "unsent", "arm")}
    assert counted["move"] == watch.moves + watch.kill_moves == sum(desk.writes.values())
    assert counted["arm"] == 2
    for what in ("fader", "mute", "lost", "connected"):
        journaled = sum(1 for r in records if r["kind"] == "desk" and r["what"] == what)
        assert journaled == watch.desk_events[what], what
    last = journal_last(desk.law, records)
    assert last == {ch: desk.law.step_of(value) for ch, value in desk.faders.items()}
    assert records[-1]["kind"] == "stop"
    growth = (result.rss_end - result.rss_warm) / result.rss_warm
    print(f"\n{result.minutes:g} min on a virtual clock ({result.model}): {result.steps} steps, {watch.moves} moves "
          f"(+{watch.kill_moves} by kill), {dict(result.script.done)}, desk reported {dict(watch.desk_events)}, "
          f"{result.model_errors} model errors, promises broken {sum(watch.broken.values())}, "
          f"RSS {result.rss_warm / 2**20:.1f} -> {result.rss_end / 2**20:.1f} MiB ({growth:+.2%})")
    assert growth < 0.05


async def test_sixty_minutes_on_a_virtual_clock(tmp_path):
    check_soak(await run_virtual_show(tmp_path, 60.0))


@pytest.mark.soak
async def test_sixty_minutes_on_a_virtual_clock_with_the_loudness_model(tmp_path):
    check_soak(await run_virtual_show(tmp_path, 60.0, seed=2, model="loudness"))


# ----- ten minutes in real time: ailive run on jackd, the simulator, mosquitto -------------------------

REAL_S = float(os.environ.get("AILIVE_SOAK_S", "600"))  # shorter for a trial run of the soak itself
HOLD_S = 4.0
ALLOWANCE_S = 0.1  # a write already on its way when a hand, a mute or a command arrived (loopback)
QUIET_END_S = 15.0  # the last seconds without faults: the bridge has seen every fader again when it stops
POLL_S = 1.0  # the X32's fader and mute poll: what a lost push hides is seen within it
PAIRS = {5: (5, 6), 6: (5, 6)}  # the example show's keys


def soak_show_file(path: Path, ports: list[str], desk_port: int, broker_port: int) -> Path:
    text = EXAMPLE.read_text().replace("port = 10023", f"port = {desk_port}")
    text = text.replace("override_hold_s = 10.0", f"override_hold_s = {HOLD_S}")
    for index, port in enumerate(ports, start=1):
        text = text.replace(f'port = "system:capture_{index}"', f'port = "{port}"')
    text += f'\n[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\ntoken = "soak-token"\n'
    path.write_text(text)
    return path


@dataclass
class Timeline:
    """When each channel was muted, touched by a hand or set to manual, on the desk's loop clock."""

    muted: dict[int, list[tuple[float, bool]]]
    touched: dict[int, list[tuple[float, float]]]  # time, the level the hand set
    manual: dict[int, list[tuple[float, bool]]]
    lossy: list[tuple[float, bool]] = field(default_factory=list)

    def under_loss(self, time_s: float) -> bool:
        """Whether a push may have been lost by then and not yet made up for by a poll."""
        return self.state_at(self.lossy, time_s) or self.state_at(self.lossy, time_s - POLL_S - ALLOWANCE_S)

    @staticmethod
    def state_at(changes: list[tuple[float, bool]], time_s: float) -> bool:
        state = False
        for at, value in changes:
            if at + ALLOWANCE_S <= time_s:
                state = value
        return state


@pytest.mark.soak
async def test_ten_minutes_in_real_time(own_jack_server, mosquitto, tmp_path):
    """``ailive run`` on a dummy jackd, the X32 simulator and mosquitto, as in production, for ten minutes."""
    rng = random.Random(5)
    band = noise_channels(HOT_KICK, 6.0, 48000, seed=21)
    original = band.copy()
    timeline = Timeline({ch: [] for ch in range(1, 9)}, {ch: [] for ch in range(1, 9)}, {ch: [] for ch in range(1, 9)})
    counts: Counter[str] = Counter()
    rss: list[tuple[float, int]] = []
    log = tmp_path / "bridge.log"
    with JackPlayer(own_jack_server.name, band, 48000) as player, log.open("wb") as stderr:
        async with recording_desk() as desk:
            show = soak_show_file(tmp_path / "soak.toml", player.output_ports, desk.port, mosquitto.port)
            journal_dir = tmp_path / "journal"
            bridge = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ailive.bridge.cli", "run", str(show), "--source", "jack", "--jack-server",
                own_jack_server.name, "--arm", "--arm-after", "1.0", "--duration", str(REAL_S), "--headless",
                "--journal", str(journal_dir), stdout=asyncio.subprocess.DEVNULL, stderr=stderr)
            loop = asyncio.get_running_loop()
            try:
                async with watching(mosquitto.port) as tablet:
                    started = loop.time()
                    await tablet.expect("state", lambda p: p.get("armed") is True, timeout_s=30)
                    next_rss = loop.time()
                    while bridge.returncode is None and loop.time() - started < REAL_S - QUIET_END_S:
                        await asyncio.sleep(0.25)
                        now = loop.time()
                        if now >= next_rss:
                            rss.append((now - started, rss_bytes(bridge.pid)))
                            next_rss = now + 10.0
                        await soak_events(rng, desk, player, original, tablet, timeline, counts, now)
                    for ch in range(1, 9):  # the end of the show: sound back, mutes off, a clean network
                        player.signals[ch - 1] = original[ch - 1]
                        if desk.muted(ch):
                            desk.set_mute(ch, False)
                            timeline.muted[ch].append((loop.time(), False))
                    desk.faults.set_loss(0.0)
                    timeline.lossy.append((loop.time(), False))
                    rss.append((loop.time() - started, rss_bytes(bridge.pid)))
                    await asyncio.wait_for(bridge.wait(), timeout=REAL_S + 60)
            finally:
                if bridge.returncode is None:
                    bridge.send_signal(signal.SIGKILL)
                    await bridge.wait()
            assert bridge.returncode == 0, log.read_text()[-2000:]
            records = read_records(journal_dir / "x32-demo.jsonl")
            steps = {ch: desk.profile.law.step_of(desk.fader(ch)) for ch in range(1, 9)}
            writers = Counter(c.by for c in desk.history if c.by is not None and c.by[0] == "127.0.0.1")
            bridge_peer = writers.most_common(1)[0][0]  # the only client that writes faders
    check_real_soak(desk, records, bridge_peer, steps, timeline, counts, rss)


async def soak_events(rng, desk, player, original, tablet, timeline: Timeline, counts: Counter[str], now: float) -> None:
    """A busy show, four events a minute: hands, mutes, dropouts, manual switches, restarts, lossy minutes."""
    roll = rng.random()
    if roll < 0.25 / 20:
        ch, db = rng.randrange(1, 9), rng.uniform(-30.0, 4.0)
        before = desk.fader(ch)
        desk.move_fader_db(ch, db)
        if desk.fader(ch) != before:  # a hand that lands where the fader was changes nothing
            timeline.touched[ch].append((now, desk.fader_db(ch)))
        counts["engineer"] += 1
    elif roll < 0.25 / 20 + 0.25 / 45:
        ch = rng.randrange(1, 9)
        muted = not desk.muted(ch)
        desk.set_mute(ch, muted)
        timeline.muted[ch].append((now, muted))
        counts["mute"] += 1
    elif roll < 0.25 / 20 + 0.25 / 45 + 0.25 / 60:
        ch = rng.randrange(8)
        player.signals[ch] = 0.0 if player.signals[ch].any() else original[ch]  # a mic drops out, or comes back
        counts["dropout"] += 1
    elif roll < 0.25 / 20 + 0.25 / 45 + 0.25 / 60 + 0.25 / 120:
        ch = rng.choice([1, 2, 3, 4, 7])
        mode = "manual" if not Timeline.state_at(timeline.manual[ch], now + 1.0) else "auto"
        answer = await tablet.ask(f"ch/{ch}/mode", {"id": f"m{counts['manual']}", "mode": mode, "token": "soak-token"})
        assert answer["ok"], answer
        timeline.manual[ch].append((now, mode == "manual"))
        counts["manual"] += 1
    elif roll < 0.25 / 20 + 0.25 / 45 + 0.25 / 60 + 0.25 / 120 + 0.25 / 150:
        keep = rng.random() < 0.5
        before = {ch: desk.fader(ch) for ch in range(1, 9)}
        await desk.restart(keep_state=keep, downtime_s=rng.uniform(1.0, 5.0))
        back = asyncio.get_running_loop().time()
        for ch in range(1, 9):  # power-on levels are the desk's change: the bridge backs off from them
            if desk.fader(ch) != before[ch]:
                timeline.touched[ch].append((back, desk.fader_db(ch)))
            if not keep:
                timeline.muted[ch].append((back, False))
        counts["restart"] += 1
    elif roll < 0.25 / 20 + 0.25 / 45 + 0.25 / 60 + 0.25 / 120 + 0.25 / 150 + 0.25 / 120:
        desk.faults.set_loss(0.0 if desk.faults.loss_in else rng.choice([0.05, 0.2]))
        timeline.lossy.append((now, desk.faults.loss_in > 0))
        counts["loss"] += 1


def check_real_soak(desk, records, bridge_peer, steps, timeline: Timeline, counts, rss) -> None:
    ledger = audit(desk.profile.law, records, desk.history, bridge_peer, steps)
    ceiling = 5.0
    broken: Counter[str] = Counter()
    races: Counter[str] = Counter()
    for change in desk.writes_by(bridge_peer):
        ch, t = change.channel, change.time_s
        # What a lost push hid is seen by the next poll: until then a write is a race with the network, counted apart.
        tally = races if timeline.under_loss(t) else broken
        if change.db > ceiling + 1e-9:
            broken["above the ceiling"] += 1
        if Timeline.state_at(timeline.muted[ch], t):
            tally["wrote a muted channel"] += 1
        elif Timeline.state_at(timeline.muted[ch], t + ALLOWANCE_S):
            races["a mute on its way"] += 1
        if Timeline.state_at(timeline.manual[ch], t):
            broken["wrote a manual channel"] += 1
        for partner in PAIRS.get(ch, (ch,)):
            for at, level in timeline.touched[partner]:
                if at + ALLOWANCE_S < t < at + HOLD_S and not (partner == ch and abs(change.db - level) < 1e-6):
                    tally["wrote inside a hand's hold"] += 1
    warm = next(b for t, b in rss if t >= min(60.0, REAL_S / 5))  # after the first minute: caches and pools are full
    growth = (rss[-1][1] - warm) / warm
    print(f"\n{REAL_S / 60:g} min in real time: {dict(counts)}, {ledger.bridge_writes} writes, max "
          f"{ledger.max_writes_per_s}/s on a fader, {ledger.moves_lost} moves lost, races with the network "
          f"{dict(races)}, RSS {warm / 2**20:.1f} -> {rss[-1][1] / 2**20:.1f} MiB ({growth:+.2%}), "
          f"broken {dict(broken)}")
    assert not broken
    assert not ledger.unexplained and ledger.moves_lost == 0
    assert ledger.max_writes_per_s <= desk.profile.max_writes_per_s + 1
    assert 8 not in ledger.channels_written
    assert growth < 0.05

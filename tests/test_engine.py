"""The control loop end to end on a virtual clock: files in, simulator faders out, journal on disk."""
from __future__ import annotations

import asyncio
import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ailive.bridge.audio import FileSource
from ailive.bridge.engine import Engine
from ailive.bridge.journal import Journal, last_snapshot, read_records
from ailive.bridge.show import load_show
from ailive.consoles.driver import OscDeskDriver
from ailive.consoles.show import DeskAddress
from ailive.models.registry import load_model
from tests.conftest import wait_for

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "x32-demo.toml"
RATE = 48000


def write_stems(folder: Path, levels_db: list[float | None], seconds: float = 12.0, seed: int = 3) -> Path:
    """Band-limited noise per channel at the given RMS level (None: silence)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n = int(seconds * RATE)
    for index, level in enumerate(levels_db):
        signal = np.zeros(n, dtype=np.float32)
        if level is not None:
            noise = rng.standard_normal(n)
            noise = np.convolve(noise, np.ones(8) / 8, mode="same")
            signal = (noise / np.sqrt(np.mean(noise ** 2)) * 10 ** (level / 20)).astype(np.float32)
        sf.write(folder / f"{index + 1:02d}.wav", signal, RATE)
    return folder


async def run_engine(x32_sim, stems: Path, tmp_path: Path, *, model="loudness", duration_s=None, arm_after_s=1.0,
                     during=None, realtime=False, **policy):
    show = load_show(EXAMPLE).with_desk(DeskAddress("127.0.0.1", x32_sim.port))
    show = replace(show, policy=replace(show.policy, **policy))
    source = FileSource.from_directory(stems, realtime=realtime)
    await source.start()
    driver = OscDeskDriver(show.profile, "127.0.0.1", x32_sim.port, show.desk_channels)
    await driver.connect()
    journal = Journal(tmp_path / "journal", show.name)
    journal.open()
    engine = Engine(show, source, driver, load_model(model), journal)
    try:
        task = asyncio.create_task(engine.run(duration_s=duration_s, arm_after_s=arm_after_s))
        if during is not None:
            await during(engine, driver)
        status = await task
    finally:
        journal.close()
        await driver.close()
        await source.stop()
    return engine, status, show


async def test_a_hot_channel_comes_down(x32_sim, tmp_path):
    stems = write_stems(tmp_path / "stems", [-8.0, -20.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0])
    engine, status, show = await run_engine(x32_sim, stems, tmp_path)
    await asyncio.sleep(0.2)  # the last rate-limited writes land
    assert status.moves > 0 and status.model_errors == 0
    assert x32_sim.fader_db(1) < -4.0  # 12 dB too hot: pulled down (window 6 dB)
    assert x32_sim.fader_db(8) == pytest.approx(-0.01, abs=0.02)  # talkback is excluded: never written
    records = read_records(tmp_path / "journal" / f"{show.name}.jsonl")
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "start" and kinds[-1] == "stop"
    assert kinds.index("arm") < kinds.index("move")
    snapshot = last_snapshot(tmp_path / "journal", show.name)
    assert snapshot.faders_db[1] == pytest.approx(-0.01, abs=0.01)
    assert all(r["ch"] != 8 for r in records if r["kind"] == "move")


async def test_engineer_move_is_respected_for_the_hold_time(x32_sim, tmp_path):
    stems = write_stems(tmp_path / "stems", [-8.0, -20.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0], seconds=5.0)

    async def engineer(engine, driver):
        await wait_for(lambda: any(m.startswith("armed") for m in engine.status.last_events), timeout_s=5)
        await asyncio.sleep(1.0)
        x32_sim.move_fader_db(1, 2.0)
        await wait_for(lambda: engine.status.engineer_moves > 0, timeout_s=2)

    engine, status, show = await run_engine(x32_sim, stems, tmp_path, during=engineer, realtime=True,
                                            arm_after_s=0.3, override_hold_s=1.5)
    records = read_records(tmp_path / "journal" / f"{show.name}.jsonl")
    override = next(i for i, r in enumerate(records) if r["kind"] == "event" and r["what"] == "override")
    ended = next(i for i, r in enumerate(records) if r["kind"] == "event" and r["what"] == "override-ended")
    assert records[ended]["t"] - records[override]["t"] == pytest.approx(1.5, abs=0.2)
    assert not any(r["kind"] == "move" and r["ch"] == 1 for r in records[override:ended])
    assert any(r["kind"] == "move" and r["ch"] != 1 for r in records[override:ended])  # the others kept riding


async def test_model_failure_holds_and_never_stops_the_bridge(x32_sim, tmp_path):
    stems = write_stems(tmp_path / "stems", [-8.0, -20.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0], seconds=4.0)

    class Broken:
        card = load_model("loudness").card

        def initial_state(self, channels, rate):
            return None

        def step(self, state, frame):
            raise RuntimeError("weights are garbage")

    show = load_show(EXAMPLE).with_desk(DeskAddress("127.0.0.1", x32_sim.port))
    source = FileSource.from_directory(stems)
    await source.start()
    async with OscDeskDriver(show.profile, "127.0.0.1", x32_sim.port, show.desk_channels) as driver:
        with Journal(tmp_path / "j", show.name) as journal:
            status = await Engine(show, source, driver, Broken(), journal).run(arm_after_s=0.5)
    assert status.moves == 0 and status.model_errors > 0
    assert x32_sim.stats.writes == {}
    assert any(r["kind"] == "model-error" for r in read_records(tmp_path / "j" / f"{show.name}.jsonl"))


async def test_a_command_is_answered_by_the_future_the_engine_resolves(x32_sim, tmp_path):
    from ailive.bridge.control import Arm, Mode, SetMode

    stems = write_stems(tmp_path / "stems", [-8.0, -20.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0], seconds=3.0)
    outcomes = {}

    async def commands(engine, driver):
        await wait_for(lambda: engine.status.steps > 2, timeout_s=5)
        outcomes["arm"] = await engine.submit(Arm("test"))
        outcomes["again"] = await engine.arm("test")
        outcomes["manual"] = await engine.submit(SetMode(2, Mode.MANUAL, "test"))
        outcomes["unmapped"] = await engine.submit(SetMode(99, Mode.AUTO, "test"))

    engine, status, show = await run_engine(x32_sim, stems, tmp_path, during=commands, arm_after_s=None)
    assert outcomes["arm"].applied and outcomes["arm"].armed and "snapshot" in outcomes["arm"].detail
    assert outcomes["again"].applied and outcomes["again"].detail == "no change"  # already armed: nothing changed
    assert outcomes["manual"].applied and outcomes["manual"].mode is Mode.MANUAL
    assert not outcomes["unmapped"].applied and "99" in outcomes["unmapped"].detail  # refused, with the reason
    records = read_records(tmp_path / "journal" / f"{show.name}.jsonl")
    assert {"kind": "refused", "command": "mode"}.items() <= next(r for r in records if r["kind"] == "refused").items()
    assert any(r["kind"] == "command" and r["command"] == "mode" and r["args"] == [2, "manual"] for r in records)


async def test_holds_carry_a_code_and_the_text_stays_for_people(x32_sim, tmp_path):
    stems = write_stems(tmp_path / "stems", [-8.0, -20.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0], seconds=8.0)
    seen = {}

    async def fail_the_model(engine, driver):
        await wait_for(lambda: engine.state.armed, timeout_s=5)
        engine.model = _Failing(engine.model)
        await wait_for(lambda: engine.refresh().hold_code == "model_error", timeout_s=5)
        seen["status"] = copy.deepcopy(engine.refresh())  # the engine keeps updating its own
        engine.stop()

    class _Failing:
        def __init__(self, model):
            self.card = model.card

        def step(self, state, frame):
            raise RuntimeError("the model fell over")

    await run_engine(x32_sim, stems, tmp_path, during=fail_the_model, arm_after_s=0.2, realtime=True)
    status = seen["status"]
    assert status.armed and status.hold == "held: model error" and status.hold_code == "model_error"
    assert all(ch.hold_code == "model_error" for ch in status.channels if ch.mode == "auto"), status.channels
    assert all(ch.hold_code == "" for ch in status.channels if ch.mode == "excluded")


def test_one_float_convention_round_trips_through_the_journal(tmp_path):
    import json
    import math

    from ailive.bridge.journal import read_journal
    from ailive.bridge.jsonsafe import from_json, json_safe, payload_db, to_json

    assert [to_json(v) for v in (math.nan, -math.inf, math.inf, -3.25)] == [None, "-inf", "inf", -3.25]
    assert all(math.isnan(from_json(v)) for v in (None, "nan"))
    assert [from_json(to_json(v)) for v in (-math.inf, math.inf, -3.25)] == [-math.inf, math.inf, -3.25]
    assert payload_db(-3.256) == -3.26 and payload_db(None) is None
    assert json.dumps(json_safe({1: [math.nan, (math.inf,)]}), allow_nan=False) == '{"1": [null, ["inf"]]}'
    path = tmp_path / "show.jsonl"
    path.write_bytes(b'{"kind": "start"}\n{"kind": "mo\n\xff\xfe\n{"kind": "stop"}\n')
    read = read_journal(path)
    assert [r["kind"] for r in read.records] == ["start", "stop"] and read.dropped == [2, 3]


async def test_a_command_its_asker_gave_up_on_is_never_applied(x32_sim, tmp_path):
    from ailive.bridge.control import Arm

    stems = write_stems(tmp_path / "stems", [-8.0, -20.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0], seconds=2.0)

    async def expire(engine, driver):
        await wait_for(lambda: engine.status.steps > 2, timeout_s=5)
        engine.submit(Arm("test")).cancel()  # the gate's wait timed out: the asker was told "not applied"
        steps = engine.status.steps
        await wait_for(lambda: engine.status.steps > steps + 2, timeout_s=5)
        assert not engine.state.armed

    engine, status, show = await run_engine(x32_sim, stems, tmp_path, during=expire, arm_after_s=None)
    records = read_records(tmp_path / "journal" / f"{show.name}.jsonl")
    assert any(r["kind"] == "expired" and r["command"] == "arm" for r in records)
    assert not any(r["kind"] == "command" for r in records) and x32_sim.stats.writes == {}


async def test_a_recall_that_crossed_our_writes_goes_back_to_every_fader_of_a_group(x32_sim, tmp_path):
    """A scene recall reports both faders of a pair in one step; the first one's override of the pair must not
    refuse the other's send-back, or our crossing write stays on that fader over the scene."""
    from ailive.consoles.events import FaderMoved

    stems = write_stems(tmp_path / "stems", [-8.0, -20.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0], seconds=3.0)
    law = x32_sim.profile.law

    async def recall(engine, driver):
        await wait_for(lambda: engine.state.armed, timeout_s=5)
        scene = law.quantize(law.from_db(-2.0))
        for ch in (5, 6):  # one step's reports, as the driver gives them when our writes may have crossed them
            engine._on_desk_event(FaderMoved(ch, scene, law.to_db(scene), "external", 0.0, crossed=True))
        await wait_for(lambda: engine.status.engineer_moves >= 2, timeout_s=5)

    engine, status, show = await run_engine(x32_sim, stems, tmp_path, during=recall, arm_after_s=0.2,
                                            override_hold_s=30.0)
    records = read_records(tmp_path / "journal" / f"{show.name}.jsonl")
    sent_back = [r["ch"] for r in records if r["kind"] == "move" and r["reason"] == "engineer wins: sent back"]
    assert sent_back == [5, 6]
    assert [x32_sim.fader_db(ch) for ch in (5, 6)] == [pytest.approx(-2.0, abs=0.1)] * 2


async def test_a_waiting_write_a_hand_cancelled_is_journaled_as_unsent(x32_sim, tmp_path):
    """The driver says which of our writes a hand's move cancelled; the journal must not keep it as a move made."""
    from ailive.consoles.events import FaderMoved

    stems = write_stems(tmp_path / "stems", [-8.0, -20.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0], seconds=3.0)
    law = x32_sim.profile.law

    async def hand(engine, driver):
        await wait_for(lambda: engine.state.armed, timeout_s=5)
        level = law.quantize(law.from_db(-9.0))
        engine._on_desk_event(FaderMoved(3, level, law.to_db(level), "external", 0.0, cancelled_db=-4.5))
        await wait_for(lambda: engine.status.engineer_moves >= 1, timeout_s=5)

    engine, status, show = await run_engine(x32_sim, stems, tmp_path, during=hand, arm_after_s=0.2)
    records = read_records(tmp_path / "journal" / f"{show.name}.jsonl")
    unsent = [(r["ch"], r["to"], r["reason"]) for r in records if r["kind"] == "unsent"]
    assert (3, -4.5, "the desk moved first") in unsent, unsent


async def _arm_right_after_a_write(x32_sim, tmp_path, then=None):
    """Ride, disarm while the desk has not shown back the last write (polls 60 s apart), arm again at once."""
    from ailive.bridge.control import Arm, Disarm

    show = load_show(EXAMPLE).with_desk(DeskAddress("127.0.0.1", x32_sim.port))
    stems = write_stems(tmp_path / "stems", [-8.0, -20.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0], seconds=8.0)
    source = FileSource.from_directory(stems, realtime=True)
    await source.start()
    outcomes = {}
    async with OscDeskDriver(show.profile, "127.0.0.1", x32_sim.port, show.desk_channels, poll_period_s=60.0) as driver:
        with Journal(tmp_path / "j", show.name) as journal:
            engine = Engine(show, source, driver, load_model("loudness"), journal)
            task = asyncio.create_task(engine.run(arm_after_s=0.2))
            await wait_for(lambda: engine.status.moves > 0 and not driver.view[1].confirmed, timeout_s=6)
            await engine.submit(Disarm("test"))
            outcomes["in flight"] = [ch for ch, view in driver.view.items() if not view.confirmed]
            arm = engine.submit(Arm("test"))
            if then is not None:
                outcomes["then"] = await engine.submit(then)
            outcomes["arm"] = await arm
            engine.stop()
            await task
    await source.stop()
    return outcomes, engine


async def test_an_arm_right_after_a_write_asks_the_desk_instead_of_failing(x32_sim, tmp_path):
    outcomes, engine = await _arm_right_after_a_write(x32_sim, tmp_path)
    assert outcomes["in flight"]  # the X32 shows our writes back only when asked; nothing asked for 60 s
    assert outcomes["arm"].applied and outcomes["arm"].armed, outcomes["arm"].detail


async def test_a_disarm_after_a_waiting_arm_refuses_it(x32_sim, tmp_path):
    from ailive.bridge.control import Disarm

    outcomes, engine = await _arm_right_after_a_write(x32_sim, tmp_path, then=Disarm("test"))
    assert not outcomes["arm"].applied and not outcomes["arm"].armed
    assert "disarm came after it" in outcomes["arm"].detail

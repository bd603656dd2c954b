"""Process faults: the bridge killed with SIGKILL mid-show, and a journal that cannot be written.

``ailive run`` and ``ailive restore`` run as the user runs them, in their own
processes, against a desk simulator in this one that records every level it
held; the in-process tests swap a full disk in under a running bridge.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from ailive.bridge.journal import Journal, journal_path, read_records
from ailive.bridge.restore import restore_show
from tests.conftest import wait_for
from tests.test_engine import write_stems

from .rig import EXAMPLE, HOT_KICK, example_show, recording_desk, running_bridge

AILIVE = [sys.executable, "-m", "ailive.bridge.cli"]
#: Where the engineer had the faders when the bridge armed: every one somewhere else, one muted.
SCENE = {1: -3.0, 2: -8.0, 3: -12.0, 4: 2.0, 5: -5.0, 6: -5.0, 7: -20.0, 8: -40.0}


async def ailive(*args: str, timeout_s: float = 60.0) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(*AILIVE, *args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE, env={**os.environ, "COLUMNS": "200"})
    out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def moved_channels(journal: Path) -> set[int]:
    if not journal.exists():
        return set()
    return {r["ch"] for r in read_records(journal) if r["kind"] == "move"}


async def test_sigkill_mid_show_then_restore_puts_every_fader_back_to_the_arm_snapshot(tmp_path):
    stems = write_stems(tmp_path / "stems", HOT_KICK, seconds=30.0)
    journal_dir = tmp_path / "journal"
    record = journal_dir / "x32-demo.jsonl"
    async with recording_desk() as desk:
        for ch, db in SCENE.items():
            desk.move_fader_db(ch, db)
        desk.set_mute(4, True)
        law = desk.profile.law
        snapshot = {ch: desk.fader(ch) for ch in SCENE}
        bridge = await asyncio.create_subprocess_exec(
            *AILIVE, "run", str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{desk.port}", "--arm",
            "--arm-after", "0.3", "--headless", "--journal", str(journal_dir), "--model", "loudness",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            await wait_for(lambda: len(moved_channels(record)) >= 3, timeout_s=30, step_s=0.1)
            desk.move_fader_db(2, -15.0)  # a hand mid-show
            await asyncio.sleep(1.0)
            bridge.send_signal(signal.SIGKILL)
            await bridge.wait()
        finally:
            if bridge.returncode is None:
                bridge.kill()
                await bridge.wait()
        assert bridge.returncode == -signal.SIGKILL
        moved = {ch for ch in SCENE if desk.fader(ch) != snapshot[ch]}
        assert len(moved) >= 3  # the bridge (and the hand) had moved faders when it died
        with record.open("a") as torn:  # a crash can cut the last line short
            torn.write('{"t": 1767012345.1, "kind": "mo')
        code, out, err = await ailive("restore", str(EXAMPLE), "--desk", f"127.0.0.1:{desk.port}",
                                      "--journal", str(journal_dir))
        assert code == 0, err
        assert {ch: desk.fader(ch) for ch in SCENE} == snapshot  # every fader, the hand's one too
        assert desk.muted(4)  # restore writes faders only
        assert "MISMATCH" not in out
    print(f"\nSIGKILL mid-show: {len(moved)} faders had moved; restore put all {len(SCENE)} back "
          f"({', '.join(f'{law.to_db(v):+.1f}' for v in snapshot.values())} dB)")


async def test_restore_takes_the_last_arm_snapshot(tmp_path):
    async with recording_desk() as desk:
        show = example_show(desk.port)
        journal = Journal.for_show(tmp_path, show)
        with journal:
            journal.write_snapshot({ch: -10.0 for ch in SCENE}, "x32", str(show.desk))
            journal.write("move", ch=1, **{"from": -10.0}, to=-12.0, reason="model")
            journal.write_snapshot(SCENE, "x32", str(show.desk))  # killed and armed again
            for ch in range(1, 8):  # and it rode every channel but the excluded talkback
                journal.write("move", ch=ch, **{"from": SCENE[ch]}, to=SCENE[ch] - 1.0, reason="model")
        talkback = desk.fader(8)
        result = await restore_show(show, tmp_path)
        assert result.failed == [] and result.skipped == [8]
        law = desk.profile.law
        expected = {ch: law.quantize(law.from_db(db)) for ch, db in SCENE.items()} | {8: talkback}  # excluded: left alone
        assert {ch: desk.fader(ch) for ch in SCENE} == expected


async def test_restore_leaves_the_manual_faders_the_bridge_never_wrote_and_journals_what_it_writes(tmp_path):
    """A manual or excluded fader the bridge never wrote is the engineer's: restore leaves it, as kill does.

    Ridden faders go back even without a journaled move (a crash can keep the
    last move out of the journal); a manual one the bridge was handed and moved goes back too.
    """
    async with recording_desk() as desk:
        show = example_show(desk.port)
        show = replace(show, channels=tuple(replace(c, mode="manual") if c.desk_channel in (3, 4, 5) else c
                                            for c in show.channels))
        with Journal.for_show(tmp_path, show) as journal:
            journal.write_snapshot(SCENE, "x32", str(show.desk))
            for ch in (1, 3):  # ch 3 was handed to the bridge during the show
                journal.write("move", ch=ch, **{"from": SCENE[ch]}, to=SCENE[ch] + 2.0, reason="model")
        for ch in range(1, 9):  # the engineer's hands are everywhere afterwards
            desk.move_fader_db(ch, -30.0 + ch)
            desk.release_fader(ch)
        after_show = {ch: desk.fader(ch) for ch in range(1, 9)}
        result = await restore_show(show, tmp_path)
        back = [1, 2, 3, 6, 7]
        assert result.failed == [] and sorted(result.restored) == back and result.skipped == [4, 5, 8]
        law = desk.profile.law
        assert {ch: desk.fader(ch) for ch in back} == {ch: law.quantize(law.from_db(SCENE[ch])) for ch in back}
        assert {ch: desk.fader(ch) for ch in (4, 5, 8)} == {ch: after_show[ch] for ch in (4, 5, 8)}
    records = read_records(journal_path(tmp_path, show.name))
    assert [(r["ch"], r["ok"]) for r in records if r["kind"] == "restore"] == [(ch, True) for ch in back]


async def test_a_full_disk_is_reported_and_the_bridge_refuses_to_arm(tmp_path):
    stems = write_stems(tmp_path / "stems", HOT_KICK, seconds=4.0)
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    (journal_dir / "x32-demo.jsonl").symlink_to("/dev/full")  # every write: No space left on device
    async with recording_desk() as desk:
        code, out, err = await ailive("run", str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{desk.port}",
                                      "--arm", "--arm-after", "0.2", "--duration", "2", "--headless",
                                      "--journal", str(journal_dir))
        assert desk.stats.writes == {}  # not one fader moved
    assert code == 1 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("ailive: error: cannot write the journal") and "No space left on device" in last
    assert "refused to arm" in last
    assert "ARMED" not in out


async def test_an_unwritable_journal_directory_stops_the_bridge_before_the_desk(tmp_path):
    stems = write_stems(tmp_path / "stems", HOT_KICK, seconds=2.0)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the journal folder should be")
    async with recording_desk() as desk:
        code, _, err = await ailive("run", str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{desk.port}",
                                    "--arm", "--headless", "--journal", str(blocker / "journal"))
        assert desk.stats.received == 0  # the desk was never even asked
    assert code == 1 and err.strip().count("\n") == 0
    assert err.startswith("ailive: error: cannot write the journal") and "Not a directory" in err


async def test_a_disk_that_fills_mid_show_disarms_and_arming_waits_for_room(tmp_path):
    async with recording_desk() as desk:
        async with running_bridge(desk, tmp_path) as bridge:
            engine = bridge.engine
            await wait_for(lambda: engine.status.moves > 5, timeout_s=5)
            journal = engine.journal
            good = journal._file
            journal._file = open("/dev/full", "a", encoding="utf-8")  # the disk is full from now on
            await wait_for(lambda: not engine.state.armed, timeout_s=3)  # within one flush period
            await asyncio.sleep(0.2)  # the writes already on their way (rate-limited) land
            stopped = desk.stats.total_writes()
            await asyncio.sleep(0.5)
            assert desk.stats.total_writes() == stopped  # nothing moves once the bridge cannot explain it
            assert "No space left on device" in engine.status.journal_error
            engine.arm()
            await wait_for(lambda: any(r["kind"] == "refused" for r in bridge.records), timeout_s=2)
            refused = [r for r in bridge.records if r["kind"] == "refused"][-1]
            assert refused["command"] == "arm" and "does not arm" in refused["reason"]
            assert not engine.state.armed
            full, journal._file = journal._file, good  # room again (what sat in the full disk's buffer is lost)
            with pytest.raises(OSError):
                full.close()
            engine.arm()
            await wait_for(lambda: engine.state.armed, timeout_s=2)
            assert engine.status.journal_error == ""
    records = read_records(bridge.journal_path)
    disarmed = [r for r in records if r["kind"] == "event" and r["what"] == "disarmed"]
    assert [r["kind"] for r in records].count("arm") == 2
    assert json.dumps(records)  # the journal reads back whole after the outage
    assert disarmed

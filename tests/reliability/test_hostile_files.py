"""Hostile files: journals that are another show's or damaged, show files in the wrong encoding or nested too deep, SIGKILL.

``ailive run``, ``ailive restore`` and ``ailive check`` run as the user runs
them, in their own processes, against a desk simulator in this process that
records every level it held; after each one the test reads the desk's faders.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ailive.bridge.journal import read_records
from ailive.bridge.show import load_show
from ailive.consoles.profile import get_profile
from tests.conftest import wait_for
from tests.test_engine import write_stems

from .rig import EXAMPLE, HOT_KICK, POWER_ON, RecordingDesk, recording_desk
from .test_process_faults import AILIVE, ailive

#: Where the engineer had the faders: every one somewhere else, the talkback (ch 8, excluded) at -20 dB.
SCENE = {1: -3.0, 2: -8.0, 3: -12.0, 4: 2.0, 5: -5.0, 6: -5.0, 7: -25.0, 8: -20.0}
SHOW = "x32-demo"


def set_scene(desk: RecordingDesk, scene: dict[int, float]) -> None:
    for ch, db in scene.items():
        desk.move_fader_db(ch, db)
        desk.release_fader(ch)


def faders(desk: RecordingDesk, channels: range = range(1, 33)) -> dict[int, float]:
    return {ch: desk.fader(ch) for ch in channels}


def assert_one_line_error(code: int, err: str, pattern: str) -> str:
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


async def run_bridge(show_file: Path, stems: Path, desk: RecordingDesk, journal_dir: Path, seconds: float) -> None:
    """``ailive run --arm`` for a few seconds of the stems: it arms, rides and stops, leaving its journal."""
    code, _, err = await ailive("run", str(show_file), "--source", str(stems), "--desk", f"127.0.0.1:{desk.port}",
                                "--arm", "--arm-after", "0.3", "--duration", str(seconds), "--headless",
                                "--journal", str(journal_dir), "--model", "loudness")
    assert code == 0, err


async def restore(desk: RecordingDesk, journal_dir: Path, show_file: Path = EXAMPLE) -> tuple[int, str, str]:
    return await ailive("restore", str(show_file), "--desk", f"127.0.0.1:{desk.port}", "--journal", str(journal_dir),
                        "--timeout", "0.5")


# ----- restore: whose journal, which channels ---------------------------------------------------


async def test_restore_refuses_another_shows_journal_in_a_shared_folder(tmp_path):
    """Another show with the same name (desk channels 11-18) armed last in the same journal folder."""
    other = tmp_path / "other" / f"{SHOW}.toml"
    other.parent.mkdir()
    other.write_text(re.sub(r"(?m)^desk = (\d+)", lambda m: f"desk = {int(m.group(1)) + 10}", EXAMPLE.read_text()))
    assert load_show(other).name == load_show(EXAMPLE).name
    stems = write_stems(tmp_path / "stems", HOT_KICK, seconds=6.0)
    journal_dir = tmp_path / "journal"
    async with recording_desk() as desk:
        set_scene(desk, SCENE)
        set_scene(desk, {ch + 10: db for ch, db in SCENE.items()})
        await run_bridge(other, stems, desk, journal_dir, seconds=2.0)
        moved = [ch for ch in range(11, 19) if desk.fader_db(ch) != pytest.approx(SCENE[ch - 10], abs=0.3)]
        before, history = faders(desk), len(desk.history)
        code, _, err = await restore(desk, journal_dir)
        line = assert_one_line_error(code, err, r"maps desk channels 11-18 .*this show maps 1-8.*nothing is restored")
        assert faders(desk) == before and len(desk.history) == history  # not one fader written
    print(f"\nanother show's journal: refused ({line}); the other show had moved channels {moved}")


async def test_restore_leaves_an_excluded_channel_where_the_engineer_put_it(tmp_path):
    stems = write_stems(tmp_path / "stems", HOT_KICK, seconds=6.0)
    journal_dir = tmp_path / "journal"
    async with recording_desk() as desk:
        set_scene(desk, SCENE)
        snapshot = faders(desk, range(1, 9))
        await run_bridge(EXAMPLE, stems, desk, journal_dir, seconds=2.0)
        desk.move_fader_db(8, -5.0)  # the engineer opens the talkback after the show
        desk.release_fader(8)
        desk.move_fader_db(7, -30.0)  # and pulls the vocal, which the bridge rides: restore puts that one back
        desk.release_fader(7)
        talkback = desk.fader(8)
        code, out, err = await restore(desk, journal_dir)
        assert code == 0, err
        assert desk.fader(8) == talkback and desk.fader_db(8) == pytest.approx(-5.0, abs=0.3)
        assert faders(desk, range(1, 8)) == {ch: snapshot[ch] for ch in range(1, 8)}
        assert re.search(r"ch  8: left alone \(manual or excluded, never written by the bridge", out)
    records = read_records(journal_dir / f"{SHOW}.jsonl")
    arm = max(i for i, r in enumerate(records) if r["kind"] == "arm")
    moved = {r["ch"] for r in records[arm:] if r["kind"] == "move"}
    restored = {r["ch"]: r for r in records if r["kind"] == "restore"}
    assert 8 not in moved and set(restored) == set(range(1, 8))  # every fader it wrote is journaled
    assert all(r["ok"] for r in restored.values()), restored


async def test_restore_refuses_a_snapshot_taken_on_another_desk(tmp_path):
    journal_dir = tmp_path / "journal"
    async with recording_desk() as desk:
        set_scene(desk, SCENE)
        write_journal(journal_dir, [arm_record(desk.port + 1, {ch: -10.0 for ch in SCENE})])
        before = faders(desk)
        code, _, err = await restore(desk, journal_dir)
        assert_one_line_error(code, err, rf"taken on the desk at 127\.0\.0\.1:{desk.port + 1}, not 127\.0\.0\.1:{desk.port}")
        assert faders(desk) == before and desk.stats.total_writes() == 0


# ----- restore: damaged journals ----------------------------------------------------------------


def arm_record(port: int, levels: dict[int, float | str], **changes: Any) -> dict[str, Any]:
    """An arm record as ``ailive run`` of the example show on the desk at ``port`` writes it."""
    show = load_show(EXAMPLE)
    record = {"t": 1767012345.5, "kind": "arm", "show": show.name, "profile": "x32", "desk": f"127.0.0.1:{port}",
              "file": str(EXAMPLE), "channels": {str(c.desk_channel): {"port": c.port, "mode": c.mode} for c in show.channels},
              "faders": {str(ch): db for ch, db in levels.items()}}
    return {**record, **changes}


def write_journal(journal_dir: Path, lines: list[dict[str, Any] | bytes]) -> Path:
    journal_dir.mkdir(parents=True, exist_ok=True)
    path = journal_dir / f"{SHOW}.jsonl"
    with path.open("ab") as file:
        for line in lines:
            file.write((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n")
    return path


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


#: The newest arm record, damaged; the one before it is intact, and restore must not fall back to it.
DAMAGED_ARMS = {
    "an infinite level": lambda port: arm_record(port, {**SCENE, 1: "inf"}),
    "a channel the show does not map": lambda port: arm_record(port, {**SCENE, 31: 10.0}),
    "a level above the desk's range": lambda port: arm_record(port, {**SCENE, 4: 40.0}),
    "a level below the desk's range": lambda port: arm_record(port, {**SCENE, 4: -400.0}),
    "a NaN level": lambda port: arm_record(port, {**SCENE, 2: "nan"}),
    "a NaN literal": lambda port: json.dumps(arm_record(port, {**SCENE, 2: float("nan")})).encode(),
    "no faders": lambda port: arm_record(port, SCENE, faders=None),
    "a non-UTF-8 byte": lambda port: json.dumps(arm_record(port, SCENE)).encode().replace(
        b'"x32-demo"', b'"x32-d\xe9mo"'),
    "a deeply nested line": lambda port: json.dumps(arm_record(port, SCENE)).encode().replace(
        b'"faders": {', b'"faders": {"9": ' + nested(100_000).encode() + b", "),
    "no channel map (the record cannot be told from another show's)": lambda port: arm_record(port, SCENE, channels=None),
    "a channel fed by another port": lambda port: arm_record(port, SCENE, channels={
        **arm_record(port, SCENE)["channels"], "3": {"port": "system:capture_13", "mode": "auto"}}),
    "cut short by a crash": lambda port: json.dumps(arm_record(port, SCENE)).encode()[:200],
}


@pytest.mark.parametrize("damage", DAMAGED_ARMS)
async def test_a_damaged_newest_arm_record_is_one_error_and_no_write(tmp_path, damage):
    journal_dir = tmp_path / "journal"
    async with recording_desk() as desk:
        set_scene(desk, SCENE)
        write_journal(journal_dir, [
            arm_record(desk.port, {ch: -10.0 for ch in SCENE}),  # an earlier arm, intact but older than the faders' truth
            {"t": 1767012345.2, "kind": "move", "ch": 1, "from": -10.0, "to": -11.0, "reason": "model"},
            DAMAGED_ARMS[damage](desk.port),
        ])
        before = faders(desk)
        code, _, err = await restore(desk, journal_dir)
        line = assert_one_line_error(code, err, r"^ailive: error: .*(arm record|channel).*nothing is restored")
        assert faders(desk) == before and desk.stats.total_writes() == 0
    print(f"\n{damage}: {line[:160]}")


async def test_damaged_lines_after_an_intact_arm_record_are_skipped(tmp_path):
    journal_dir = tmp_path / "journal"
    async with recording_desk() as desk:
        set_scene(desk, {ch: -30.0 for ch in SCENE})
        write_journal(journal_dir, [
            arm_record(desk.port, SCENE),
            b'{"t": 1767012345.6, "kind": "move", "ch": 1, "from": -3.0, "to": -3.5, "reason": "mod\xffel"}',
            b'{"t": 1767012345.7, "kind": "move", "ch": 2, "from": ' + nested(100_000).encode() + b"}",
            {"t": 1767012345.8, "kind": "desk", "what": "fader", "ch": 3, "db": None},
            b'{"t": 1767012345.9, "kind": "mo',
        ])
        code, out, err = await restore(desk, journal_dir)
        assert code == 0, err
        law = desk.profile.law
        restored = {ch: law.quantize(law.from_db(db)) for ch, db in SCENE.items() if ch != 8}
        assert faders(desk, range(1, 8)) == restored
        assert desk.fader_db(8) == pytest.approx(-30.0, abs=0.3)  # excluded: left alone


# ----- files that used to end in a traceback ----------------------------------------------------


def mangled_show(tmp_path: Path, kind: str) -> Path:
    text = EXAMPLE.read_text()
    path = tmp_path / f"{kind}.toml"
    if kind == "utf-16":
        path.write_text(text, encoding="utf-16")  # with a byte-order mark, as Notepad's "Unicode"
    elif kind == "utf-16-le":
        path.write_text(text, encoding="utf-16-le")  # without one
    elif kind == "latin-1":
        path.write_text(text.replace('name = "Vox"', 'name = "Voix café"'), encoding="latin-1")
    elif kind == "nested-array":
        path.write_text(text + f"\nnotes = {nested(100_000)}\n")
    elif kind == "nested-table":
        path.write_text(text + "\nnotes = " + "{a = " * 20_000 + "1" + "}" * 20_000 + "\n")
    return path


SHOW_FILE_ERRORS = {
    "utf-16": r"expected a UTF-8 text file \(this one is UTF-16: save it as UTF-8\)",
    "utf-16-le": r"expected a UTF-8 text file \(this one holds NUL bytes",
    "latin-1": r"expected a UTF-8 text file \(line \d+ holds the byte 0xE9, which is not UTF-8",
    "nested-array": r"expected valid TOML \(its arrays or inline tables are nested too deeply",
    "nested-table": r"expected valid TOML \(its arrays or inline tables are nested too deeply",
}


@pytest.mark.parametrize("kind", SHOW_FILE_ERRORS)
async def test_a_show_file_in_a_wrong_encoding_or_nested_too_deep_is_one_error_line(tmp_path, kind):
    show_file = mangled_show(tmp_path, kind)
    stems = write_stems(tmp_path / "stems", HOT_KICK, seconds=2.0)
    journal_dir = tmp_path / "journal"
    async with recording_desk() as desk:
        desk_at = f"127.0.0.1:{desk.port}"
        for command in (["check", str(show_file), "--desk", desk_at],
                        ["run", str(show_file), "--source", str(stems), "--desk", desk_at, "--arm", "--headless",
                         "--journal", str(journal_dir)],
                        ["restore", str(show_file), "--desk", desk_at, "--journal", str(journal_dir)]):
            code, _, err = await ailive(*command)
            assert_one_line_error(code, err, rf"^ailive: error: {re.escape(str(show_file))}: {SHOW_FILE_ERRORS[kind]}")
        assert desk.stats.received == 0  # the desk was never even asked


async def test_a_profile_file_in_utf16_is_one_error_line(tmp_path):
    profile = tmp_path / "mydesk.toml"
    code, text, err = await ailive("profiles", "show", "x32")
    assert code == 0, err
    profile.write_text(text.replace('name = "x32"', 'name = "mydesk"'), encoding="utf-16")
    code, out, err = await ailive("profiles", "validate", str(profile))
    assert_one_line_error(code, err, r"mydesk\.toml: expected a UTF-8 text file \(this one is UTF-16")


# ----- SIGKILL: every move the desk received is in the journal ----------------------------------


class KillingDesk(RecordingDesk):
    """A recording desk that SIGKILLs the bridge the moment the bridge's ``kill_after``-th fader write arrives."""

    kill_after = 0
    pid = 0

    def _set(self, address: str, value: Any, writer: Any) -> None:
        super()._set(address, value, writer)
        param = self.params.get(address)
        if param is not None and param.kind == "fader" and writer not in (None, POWER_ON) and self.pid:
            self.kill_after -= 1
            if self.kill_after == 0:
                os.kill(self.pid, signal.SIGKILL)


def unjournaled_writes(desk: RecordingDesk, records: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """The bridge's writes the journal does not name, in order, per channel: (channel, step).

    The desk's writes to a fader must appear, in order, among the journal's
    moves of that fader (a resend of the same level counts once; a move the
    rate limit held and a hand then cancelled is journaled but never sent).
    """
    law = desk.profile.law
    journaled: dict[int, list[int]] = defaultdict(list)
    for r in records:
        if r["kind"] == "move":
            journaled[r["ch"]].append(law.step_of(law.from_db(float(r["to"]))))
    sent: dict[int, list[int]] = defaultdict(list)
    for change in desk.history:
        if change.by not in (None, POWER_ON) and (not sent[change.channel] or sent[change.channel][-1] != change.step):
            sent[change.channel].append(change.step)
    missing = []
    for ch, steps in sent.items():
        moves = iter(journaled[ch])
        for index, step in enumerate(steps):
            if not any(move == step for move in moves):
                missing.extend((ch, s) for s in steps[index:])
                break
    return missing


async def test_sigkill_loses_no_journaled_move(tmp_path):
    stems = write_stems(tmp_path / "stems", HOT_KICK, seconds=30.0)
    journal_dir = tmp_path / "journal"
    desk = KillingDesk(get_profile("x32"), port=0, seed=7)
    async with desk:
        set_scene(desk, SCENE)
        desk.kill_after = 25
        bridge = await asyncio.create_subprocess_exec(
            *AILIVE, "run", str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{desk.port}", "--arm",
            "--arm-after", "0.3", "--headless", "--journal", str(journal_dir), "--model", "loudness",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        desk.pid = bridge.pid
        try:
            await wait_for(lambda: bridge.returncode is not None or desk.kill_after <= 0, timeout_s=60, step_s=0.05)
            await asyncio.wait_for(bridge.wait(), 10)
        finally:
            if bridge.returncode is None:
                bridge.kill()
                await bridge.wait()
        assert bridge.returncode == -signal.SIGKILL
        await asyncio.sleep(0.2)  # datagrams sent just before the kill land
        records = read_records(journal_dir / f"{SHOW}.jsonl")
        writes = sum(1 for c in desk.history if c.by not in (None, POWER_ON))
        moves = sum(1 for r in records if r["kind"] == "move")
        missing = unjournaled_writes(desk, records)
        last = [(c.channel, c.step) for c in desk.history if c.by not in (None, POWER_ON)][-1]
    # The kill can land between a write's datagram and its journal record: only the last write the desk received
    # (nothing was sent after it, or its record would be there) may be missing.
    assert missing in ([], [last]), f"{len(missing)} of {writes} desk writes are not in the journal: {missing}"
    print(f"\nSIGKILL after {writes} desk writes: {moves} moves journaled, {len(missing)} write(s) not in the journal")

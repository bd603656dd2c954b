"""Audio sources against a real jackd (dummy driver) and real WAV/FLAC files; no mocks."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile

from ailive.bridge.audio import (
    AudioSourceError,
    Block,
    EndOfSource,
    FileSource,
    JackSource,
    match_port,
    port_short_names,
)
from ailive.bridge.audio.tap_ring import SHM_FOLDER
from tests.jackserver import JackPlayer, jackd_pids, server_is_up, stale_servers

RATE = 48000
BLOCK_FRAMES = 2400  # 50 ms, the control rate


def noise(channels: int, frames: int, seed: int = 7) -> np.ndarray:
    """Random float32 samples: every value occurs once, so a captured sample says where in the loop it came from."""
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (channels, frames)).astype(np.float32)


async def read_blocks(source: JackSource, count: int, frames: int = BLOCK_FRAMES) -> list[Block]:
    blocks = []
    for _ in range(count):
        block = await source.next_block(frames, timeout_s=10.0)
        assert block is not None, "no audio within 10 s"
        blocks.append(block)
    return blocks


def test_import_needs_neither_jack_nor_soundfile():
    code = "import sys, ailive.bridge.audio; assert 'jack' not in sys.modules and 'soundfile' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_port_names_are_sanitised_and_unique():
    names = port_short_names(["Kick In", "Kick In", "Vox: Lead", "", "(((", "snare.top-2"])
    assert names == ["Kick_In", "Kick_In_2", "Vox_Lead", "ch4", "ch5", "snare.top-2"]


def test_match_port_exact_then_single_regex_match():
    ports = [f"system:capture_{n}" for n in range(1, 17)]
    assert match_port("system:capture_1", ports) == "system:capture_1"
    assert match_port(r"capture_12$", ports) == "system:capture_12"
    with pytest.raises(AudioSourceError, match="matches 8 ports"):
        match_port(r"capture_1", ports)
    with pytest.raises(AudioSourceError, match="'desk:in_1' not found.*system:capture_1"):
        match_port("desk:in_1", ports)
    with pytest.raises(AudioSourceError, match="not found"):
        match_port("capture_[", ports)


def counter(channels: int, frames: int) -> np.ndarray:
    """A loop whose every sample names its place: channel c, loop frame i holds ((i + 1) * channels + c) / 2**20.

    Exact in float32 (integers below 2**24, scaled by a power of two), never
    zero, and unique, so a captured sample says which channel and frame it is.
    """
    places = (np.arange(frames)[None, :] + 1) * channels + np.arange(channels)[:, None]
    return (places * 2.0**-20).astype(np.float32)


def loop_frames(captured: np.ndarray, torn_as_silent: bool = False) -> np.ndarray:
    """The loop frame each captured column holds, -1 where a channel is silent.

    Fails on a sample that is not one the player played on that channel, and
    on a column whose channels hold different frames, unless ``torn_as_silent``
    (then such a column reads as silent, and the caller counts it as a break).
    """
    channels = captured.shape[0]
    places = np.rint(captured.astype(np.float64) * 2.0**20).astype(np.int64)
    silent = captured == 0
    played = (places * 2.0**-20 == captured) & (places % channels == np.arange(channels)[:, None])
    bad = np.argwhere(~silent & ~played)
    assert bad.size == 0, f"{len(bad)} captured samples are not ones the player played there, first at {bad[:3].tolist()}"
    frames = places // channels - 1
    whole = ~np.any(silent, axis=0)
    torn = whole & np.any(frames != frames[0], axis=0)
    assert torn_as_silent or not torn.any(), (
        f"{np.count_nonzero(torn)} captured columns mix frames across channels, first at {np.flatnonzero(torn)[:5]}")
    return np.where(whole & ~torn, frames[0], -1)


def breaks_between_periods(frames: np.ndarray, period: int, loop: int) -> int:
    """Periods that do not continue the one before (silent, jumped, repeated); each period must be whole on its own."""
    periods = frames.reshape(-1, period)
    breaks = 0
    for previous, current in zip(periods[:-1], periods[1:]):
        if current[0] != -1:
            assert np.array_equal(current, (current[0] + np.arange(period)) % loop), "a period torn inside"
        else:
            assert np.all(current == -1), "a period half silent"
        breaks += current[0] == -1 or current[0] != (previous[-1] + 1) % loop
    return breaks


async def test_jack_source_hands_out_what_the_player_plays(jack_server):
    """Two seconds through the tap process and its ring, checked by sample, not by time.

    A busy machine can make the player or the tap late, and JACK then loses
    or repeats a period (an xrun); a player late inside its period leaves
    some of its ports written and the others not (a torn period, read here
    as a silent one). So every captured sample must be one the player
    played, on its own channel; every period must be one whole stretch of
    the loop or silent; and the stretch breaks from one period to the next
    no more than twice per xrun the source reported (a lost or repeated
    period breaks it once, a silent or torn one twice). A torn period with
    no xrun to account for it fails, as a torn copy out of the ring would.
    """
    signals = counter(4, RATE)  # (channels, frames), a one-second loop
    period = jack_server.period_frames
    with JackPlayer(jack_server.name, signals, RATE) as player:
        async with JackSource(
            ["kick", "snare", "bass", "vox"], player.output_ports, client_name="tap", server_name=jack_server.name,
            ring_seconds=20.0,  # the reader would have to stall for 18 s to be skipped ahead
        ) as source:
            assert source.sample_rate == RATE
            assert source.port_names == [f"tap:{name}" for name in ("kick", "snare", "bass", "vox")]
            blocks = await read_blocks(source, 40)  # two seconds
            xruns, overruns = source.xruns, source.overruns

    assert overruns == 0
    assert [block.start_frame for block in blocks] == [index * BLOCK_FRAMES for index in range(40)]
    assert all(block.samples.dtype == np.float32 and block.samples.shape == (4, BLOCK_FRAMES) for block in blocks)
    assert blocks[3].time_s == pytest.approx(3 * BLOCK_FRAMES / RATE)
    captured = np.concatenate([block.samples for block in blocks], axis=1)
    frames = loop_frames(captured, torn_as_silent=True)
    # Silence until the ports are connected, one by one (the graph changes between periods), then the loop.
    first = int(np.flatnonzero(frames >= 0)[0])
    assert first % period == 0
    heard = frames[first : first + (frames.size - first) // period * period]
    assert np.count_nonzero(heard >= 0) > RATE
    breaks = breaks_between_periods(heard, period, RATE)
    print(f"{xruns} xruns, {breaks} breaks between periods")
    assert breaks <= 2 * xruns, (breaks, xruns)


async def test_blocks_are_fresh_arrays(jack_server):
    async with JackSource(["a"], [None], client_name="fresh", server_name=jack_server.name) as source:
        first, second = await read_blocks(source, 2, frames=512)
        first.samples[:] = 1.0
        assert not np.shares_memory(first.samples, second.samples)
        assert not np.any(second.samples)


async def test_connect_by_pattern_and_unconnected_channels(jack_server):
    with JackPlayer(jack_server.name, noise(2, 4800), RATE, client_name="patterned") as player:
        async with JackSource(
            ["left", "right", "spare"],
            [rf"^{player.name}:out_2$", rf"{player.name}:out_1$", None],
            client_name="bypattern",
            server_name=jack_server.name,
        ) as source:
            assert player.connections(1) == [source.port_names[0]]
            assert player.connections(0) == [source.port_names[1]]
            (block,) = await read_blocks(source, 1)
            assert not np.any(block.samples[2]), "an unconnected port reads silence"


async def test_missing_port_is_an_error_naming_it_and_leaves_no_client(jack_server):
    source = JackSource(["kick", "snare"], ["system:capture_1", "desk:no_such_port"], client_name="wrongport",
                        server_name=jack_server.name)  # fmt: skip
    with pytest.raises(AudioSourceError) as caught:
        await source.start()
    message = str(caught.value)
    assert "desk:no_such_port" in message and "system:capture_1" in message
    assert not any(port.startswith("wrongport:") for port in jack_server.ports())
    await source.stop()


async def test_no_server_is_a_one_line_error_and_starts_none():
    name = f"ailive-absent-{uuid.uuid4().hex[:8]}"
    source = JackSource(["kick"], ["system:capture_1"], server_name=name)
    with pytest.raises(AudioSourceError) as caught:
        await source.start()
    message = str(caught.value)
    assert "\n" not in message
    assert "no JACK server" in message and f"jackd -n {name} -d dummy" in message
    assert not server_is_up(name)
    assert jackd_pids(name) == []
    await source.stop()


async def test_late_reader_skips_to_the_newest_audio(jack_server):
    async with JackSource(["a"], [None], client_name="late", server_name=jack_server.name, ring_seconds=0.1) as source:
        await asyncio.sleep(0.3)
        block = await source.next_block(480, timeout_s=1.0)
        assert block is not None
        assert source.overruns == 1
        assert block.start_frame > 0.15 * RATE
        following = await source.next_block(480, timeout_s=1.0)
        assert following is not None and following.start_frame == block.start_frame + 480
        assert source.overruns == 1


async def test_frames_not_there_in_time_give_none_and_are_not_lost(jack_server):
    async with JackSource(["a"], [None], client_name="waiting", server_name=jack_server.name) as source:
        assert await source.next_block(RATE, timeout_s=0.05) is None
        block = await source.next_block(RATE, timeout_s=2.0)
        assert block is not None and block.start_frame == 0


async def test_killed_server_gives_none_not_a_hang(own_jack_server):
    with JackPlayer(own_jack_server.name, noise(2, 4800), RATE) as player:
        source = JackSource(["a", "b"], player.output_ports, client_name="orphan", server_name=own_jack_server.name)
        await source.start()
        await read_blocks(source, 2)
        own_jack_server.kill()
        loop = asyncio.get_running_loop()
        started = loop.time()
        while (block := await source.next_block(BLOCK_FRAMES, timeout_s=1.0)) is not None:
            assert loop.time() - started < 5.0, "still getting audio from a dead server"
        assert loop.time() - started < 3.0
        assert source.server_died
        await source.stop()
        await source.stop()
    assert own_jack_server.name not in stale_servers(), "the killed server's registry slot was not freed"


def tap_rings() -> set[str]:
    return {path.name for path in SHM_FOLDER.glob("ailive-tap-*")}


def tap_processes() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()
            and b"ailive.bridge.audio.tap_process" in _cmdline(entry)]


def _cmdline(entry: Path) -> bytes:
    try:
        return (entry / "cmdline").read_bytes()
    except OSError:
        return b""


async def test_the_tap_is_a_process_of_its_own_and_leaves_nothing_behind(jack_server):
    rings_before = tap_rings()
    async with JackSource(["a", "b"], [None, None], client_name="ownprocess", server_name=jack_server.name) as source:
        assert source.tap_pid is not None and source.tap_pid != os.getpid()
        assert source.tap_pid in tap_processes()
        assert tap_rings() == rings_before, "the ring's file is removed once both sides hold it"
        await read_blocks(source, 2)
        pid = source.tap_pid
    assert pid not in tap_processes()
    assert not any(port.startswith("ownprocess:") for port in jack_server.ports())


def test_the_tap_leaves_jack_when_the_bridge_is_killed(jack_server):
    """SIGKILL gives the bridge no chance to stop its tap: the tap sees its pipe close and leaves JACK by itself."""
    code = (
        "import asyncio, sys\n"
        "from ailive.bridge.audio import JackSource\n"
        "async def main():\n"
        f"    source = JackSource(['a'], [None], client_name='orphaned', server_name={jack_server.name!r})\n"
        "    await source.start()\n"
        "    print(source.tap_pid, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    bridge = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        tap_pid = int(bridge.stdout.readline())
        assert any(port.startswith("orphaned:") for port in jack_server.ports())
    finally:
        bridge.kill()
        bridge.wait()
    deadline = time.monotonic() + 5.0
    while tap_pid in tap_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tap_pid not in tap_processes()
    assert not any(port.startswith("orphaned:") for port in jack_server.ports())


async def test_a_tap_process_that_dies_is_a_dead_source_with_its_reason(jack_server):
    async with JackSource(["a"], [None], client_name="shortlived", server_name=jack_server.name) as source:
        await read_blocks(source, 1)
        os.kill(source.tap_pid, signal.SIGKILL)
        assert await source.next_block(BLOCK_FRAMES * 40, timeout_s=2.0) is None
        assert source.server_died
        assert "tap process exited with code -9" in source.shutdown_reason


def write_multitrack(folder: Path) -> dict[str, np.ndarray]:
    """Three stems, the second shorter, plus a file that is not audio; returns what soundfile reads back."""
    folder.mkdir(exist_ok=True)
    stems = {"01_kick.wav": noise(1, 1500, seed=1)[0], "02_bass.flac": noise(1, 1000, seed=2)[0],
             "03_vox.wav": noise(1, 1500, seed=3)[0]}  # fmt: skip
    for name, samples in stems.items():
        subtype = "FLOAT" if name.endswith(".wav") else "PCM_24"
        soundfile.write(folder / name, samples, 8000, subtype=subtype)
    (folder / "notes.txt").write_text("not audio")
    return {name: soundfile.read(folder / name, dtype="float32")[0] for name in stems}


async def test_file_source_plays_the_files_then_ends(tmp_path):
    stems = write_multitrack(tmp_path / "show")
    source = FileSource.from_directory(tmp_path / "show")
    assert source.channel_names == ["01_kick", "02_bass", "03_vox"]
    assert source.sample_rate == 8000 and source.realtime is False and source.total_frames == 1500
    async with source:
        blocks = [await source.next_block(512, timeout_s=0.0) for _ in range(3)]
        with pytest.raises(EndOfSource):
            await source.next_block(512, timeout_s=0.0)
    assert [block.start_frame for block in blocks] == [0, 512, 1024]
    played = np.concatenate([block.samples for block in blocks], axis=1)  # (channels, 1536)
    expected = np.zeros((3, 1536), dtype=np.float32)
    for row, samples in zip(expected, stems.values()):
        row[: len(samples)] = samples
    np.testing.assert_array_equal(played, expected)
    assert not np.any(played[1, 1000:]) and not np.any(played[:, 1500:])


async def test_file_source_in_real_time_takes_the_duration(tmp_path):
    soundfile.write(tmp_path / "click.wav", noise(1, 4000)[0], 8000)  # half a second
    async with FileSource([tmp_path / "click.wav"], realtime=True) as source:
        assert await source.next_block(800, timeout_s=0.01) is None
        loop = asyncio.get_running_loop()
        started = loop.time()
        starts = []
        while True:
            try:
                block = await source.next_block(800, timeout_s=1.0)
            except EndOfSource:
                break
            assert block is not None
            starts.append(block.start_frame)
        assert starts == [0, 800, 1600, 2400, 3200]
        assert loop.time() - started >= 0.8 * 0.5 - 0.02


def test_mismatched_sample_rates_name_both_files(tmp_path):
    soundfile.write(tmp_path / "a.wav", np.zeros(100, dtype=np.float32), 48000)
    soundfile.write(tmp_path / "b.wav", np.zeros(100, dtype=np.float32), 44100)
    with pytest.raises(AudioSourceError) as caught:
        FileSource.from_directory(tmp_path)
    message = str(caught.value)
    assert "a.wav" in message and "b.wav" in message and "48000" in message and "44100" in message


def test_stereo_file_is_refused_by_name(tmp_path):
    soundfile.write(tmp_path / "a.wav", np.zeros(100, dtype=np.float32), 48000)
    soundfile.write(tmp_path / "pair.flac", np.zeros((100, 2), dtype=np.float32), 48000)
    with pytest.raises(AudioSourceError, match=r"pair\.flac: 2 channels"):
        FileSource.from_directory(tmp_path)


def test_empty_or_missing_folder_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no audio here")
    with pytest.raises(AudioSourceError, match="no .wav or .flac files"):
        FileSource.from_directory(tmp_path)
    with pytest.raises(AudioSourceError, match="no such folder"):
        FileSource.from_directory(tmp_path / "absent")


def test_unreadable_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "broken.wav").write_bytes(b"RIFF nonsense")
    with pytest.raises(AudioSourceError, match=r"broken\.wav: cannot read audio"):
        FileSource([tmp_path / "broken.wav"])

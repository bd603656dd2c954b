"""Attacks through the desk link: forged desk reports, a desk that restarts faster than the liveness timeout, a flood.

The bridge runs in this process on real parts (engine, OSC driver, journal)
against a recording desk simulator over loopback UDP. A forged report is sent
from the desk's own socket (``send_raw``), so the driver cannot tell it from
the desk: what it may believe is state; what it writes must still pass the
policy's bounds and be journaled.
"""
from __future__ import annotations

import asyncio
import sys

import pytest

from ailive.consoles import osc
from tests.conftest import wait_for

from .ledger import audit
from .rig import Bridge, recording_desk, running_bridge

POLL_S = 0.5
LIVENESS_S = 1.5
HOLD_S = 1.5


def moves(bridge: Bridge, ch: int | None = None) -> list[dict]:
    return [r for r in bridge.records if r["kind"] == "move" and (ch is None or r["ch"] == ch)]


def events(bridge: Bridge, what: str) -> list[dict]:
    return [r for r in bridge.records if r["kind"] == "event" and r["what"] == what]


async def forge_fader(bridge: Bridge, ch: int, db: float) -> None:
    """A report of a fader level, from the desk's own address and port, right after one of the bridge's writes."""
    desk = bridge.desk
    written = len(desk.writes_by(bridge.peer, ch))
    await wait_for(lambda: len(desk.writes_by(bridge.peer, ch)) > written, timeout_s=8)
    law = desk.profile.law
    desk.send_raw(osc.encode(desk.profile.fader.address_of(ch), "f", (law.quantize(law.from_db(db)),)), bridge.peer)


# ----- a report turned into a write ------------------------------------------------------------------


async def forge_out_of_bounds(desk, tmp_path, poll_period_s: float) -> tuple[Bridge, float, list]:
    """A forged "+10 dB" on channel 2 (above the ceiling) and "-30 dB" on channel 3 (below the window), each
    right after one of the bridge's writes; the bridge's writes to both faders, as the desk got them."""
    async with running_bridge(desk, tmp_path, override_hold_s=HOLD_S, poll_period_s=poll_period_s) as bridge:
        await forge_fader(bridge, 2, 10.0)
        await forge_fader(bridge, 3, -30.0)
        await asyncio.sleep(0.5)
    return bridge, bridge.show.policy.ceiling_db, [c for c in desk.writes_by(bridge.peer) if c.channel in (2, 3)]


def assert_never_written_back(bridge: Bridge, ceiling: float, written: list) -> dict[int, str]:
    """Nothing the bridge wrote is above the ceiling or outside the window; each refusal says why; the refusals."""
    assert all(c.db <= ceiling + 1e-9 for c in written)
    assert not any(c.channel == 3 and c.db < -20 for c in written)
    refused = {r["ch"]: r["detail"] for r in events(bridge, "send-back-refused")}
    assert set(refused) <= {2, 3}
    assert "above the ceiling" in refused.get(2, "above the ceiling")
    assert "outside the window" in refused.get(3, "outside the window")
    assert bridge.engine.status.sent_back == 0 and bridge.engine.status.send_back_refused == len(refused)
    assert not [r for r in moves(bridge) if r["reason"].startswith("engineer wins")]
    return refused


async def test_a_forged_report_above_the_ceiling_or_outside_the_window_is_never_written_back(tmp_path):
    async with recording_desk() as desk:
        # Polls far apart: each forged level is the last word on its fader in its control step (a poll answer
        # read in the same step would be, and then nothing is even considered: the test below).
        bridge, ceiling, written = await forge_out_of_bounds(desk, tmp_path, poll_period_s=5.0)
    refused = assert_never_written_back(bridge, ceiling, written)
    assert set(refused) == {2, 3}, refused


async def test_a_forged_report_read_with_a_poll_answer_is_never_written_back_either(tmp_path):
    """Polls every half second: a poll answer may land in the forged report's control step, showing the desk's
    real level after it; then that answer is the fader's last word and nothing is sent back or refused. Either
    way the race goes, nothing out of bounds goes back to the desk."""
    async with recording_desk() as desk:
        bridge, ceiling, written = await forge_out_of_bounds(desk, tmp_path, poll_period_s=POLL_S)
    assert_never_written_back(bridge, ceiling, written)


async def test_a_crossed_move_within_bounds_is_sent_back_as_a_journaled_move(tmp_path):
    async with recording_desk() as desk:
        # Polls far apart: a poll answer read in the same step would be the fader's last word, and nothing is sent back.
        async with running_bridge(desk, tmp_path, override_hold_s=HOLD_S, poll_period_s=5.0) as bridge:
            await forge_fader(bridge, 2, -4.0)  # a hand inside the window, crossed by the bridge's write
            await wait_for(lambda: bridge.engine.status.sent_back == 1, timeout_s=3)
            await wait_for(lambda: abs(desk.fader_db(2) + 4.0) < 0.2, timeout_s=2)
    sent = [r for r in moves(bridge, 2) if r["reason"] == "engineer wins: sent back"]
    assert len(sent) == 1 and abs(sent[0]["to"] + 4.0) < 0.2
    ledger = audit(desk.profile.law, bridge.journal(), desk.history, bridge.peer,
                   {ch: desk.profile.law.step_of(desk.fader(ch)) for ch in bridge.show.desk_channels})
    assert not ledger.unexplained


async def test_a_gesture_that_goes_on_is_never_pulled_back_to_its_first_level(tmp_path):
    async with recording_desk() as desk:
        async with running_bridge(desk, tmp_path, override_hold_s=HOLD_S, poll_period_s=POLL_S) as bridge:
            await forge_fader(bridge, 2, -3.0)  # crossed by the bridge's write ...
            law, address = desk.profile.law, desk.profile.fader.address_of(2)
            for db in (-4.0, -5.0):  # ... and the hand goes on, all before the next control step
                desk.send_raw(osc.encode(address, "f", (law.quantize(law.from_db(db)),)), bridge.peer)
            await wait_for(lambda: bridge.engine.status.engineer_moves >= 3, timeout_s=2)
            await asyncio.sleep(0.3)
    assert bridge.engine.status.sent_back == 0
    assert not [r for r in moves(bridge, 2) if r["reason"] == "engineer wins: sent back"]


async def test_a_forged_unmute_never_starts_the_bridge_writing_a_muted_channel(tmp_path):
    async with recording_desk() as desk:
        async with running_bridge(desk, tmp_path, override_hold_s=HOLD_S, poll_period_s=POLL_S) as bridge:
            await wait_for(lambda: len(desk.writes_by(bridge.peer, 3)) >= 2, timeout_s=3)
            desk.set_mute(3, True)
            await wait_for(lambda: bridge.driver.view[3].muted is True, timeout_s=2)
            muted_at = desk._now()
            mute = desk.profile.mute
            unmuted = int(1 - mute.muted_value) if mute.type == "i" else 1.0 - mute.muted_value
            for _ in range(14):  # the desk still holds the channel muted
                desk.send_raw(osc.encode(mute.address_of(3), mute.type, (unmuted,)), bridge.peer)
                await asyncio.sleep(0.1)
            assert bridge.driver.view[3].muted is True
    assert [c for c in desk.writes_by(bridge.peer, 3) if c.time_s > muted_at + 0.1] == []
    assert bridge.driver.stats.unmutes_checked >= 1


# ----- a desk that restarts faster than the liveness timeout -----------------------------------------


@pytest.mark.parametrize("downtime_s", [0.3, 1.0])
async def test_a_desk_restarting_with_its_faders_reset_faster_than_the_liveness_timeout_is_read_again(tmp_path, downtime_s):
    async with recording_desk() as desk:
        async with running_bridge(desk, tmp_path, override_hold_s=HOLD_S, poll_period_s=POLL_S,
                                  liveness_timeout_s=LIVENESS_S) as bridge:
            await wait_for(lambda: desk.fader_db(1) < -1.5 and desk.fader_db(2) > 1.0, timeout_s=5)
            await desk.restart(keep_state=False, downtime_s=downtime_s)
            back_at = desk._now()
            await wait_for(lambda: bridge.driver.connected and bridge.driver.stats.reconnects >= 1, timeout_s=4)
            await asyncio.sleep(HOLD_S + 0.7)
    kinds = [(r["kind"], r.get("what")) for r in bridge.records]
    assert ("desk", "lost") in kinds and ("desk", "connected") in kinds[kinds.index(("desk", "lost")):]
    law = desk.profile.law
    for ch in range(1, 8):  # each first write after the desk came back starts from the level it held then
        first = next((c for c in desk.writes_by(bridge.peer, ch) if c.time_s > back_at), None)
        if first is not None:
            assert abs(first.db - 0.0) <= 1.0, (ch, first)  # power-on level 0 dB: no jump from the old picture
    reconnect = kinds.index(("desk", "connected"), kinds.index(("desk", "lost")))
    for record in [r for r in bridge.records[reconnect:] if r["kind"] == "move"][:7]:
        assert abs(record["from"] - 0.0) <= 1.0, record  # the journal's "from" is what the desk held
    del law


async def test_faders_that_change_behind_the_bridge_all_at_once_make_it_read_the_desk_again(tmp_path):
    """A restart too short for any datagram to meet the closed port, or a scene recall nobody pushed."""
    async with recording_desk() as desk:
        for ch in range(1, 9):
            desk.move_fader_db(ch, -5.0)  # armed here; the desk powers on at 0 dB
        async with running_bridge(desk, tmp_path, override_hold_s=HOLD_S, poll_period_s=POLL_S,
                                  liveness_timeout_s=LIVENESS_S) as bridge:
            await wait_for(lambda: desk.fader_db(1) < -6.5 and desk.fader_db(2) > -4.0, timeout_s=5)
            # On target: the bridge has stopped writing, so nothing of its own hides the change.
            await wait_for(lambda: desk._now() - max(c.time_s for c in desk.writes_by(bridge.peer)) > 2 * POLL_S,
                           timeout_s=8)
            desk.reset_state()  # no push: the next poll is the first the bridge hears of it
            await wait_for(lambda: bridge.driver.stats.reconnects >= 1, timeout_s=3)
            await asyncio.sleep(0.3)
    lost = [r for r in bridge.records if r["kind"] == "desk" and r["what"] == "lost"]
    assert lost and "none of our writes left there" in lost[0]["reason"]


# ----- a flood from a stranger -------------------------------------------------------------------------


FLOODER = """
import socket, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = bytes.fromhex(sys.argv[4])
sent, end = 0, time.monotonic() + seconds
while time.monotonic() < end:
    for _ in range(500):
        try:
            sock.sendto(payload, (host, port))
            sent += 1
        except OSError:
            pass
print(sent)
"""


async def flood(target: tuple[str, int], seconds: float, senders: int = 2) -> int:
    """Processes that send small datagrams at ``target`` as fast as they can for ``seconds``; how many went out."""
    payload = osc.encode("/ch/01/mix/fader", "f", (1.0,)).hex()
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", FLOODER, target[0], str(target[1]),
                                                  str(seconds), payload, stdout=asyncio.subprocess.PIPE)
             for _ in range(senders)]
    outputs = [await proc.communicate() for proc in procs]
    return sum(int(out.strip() or 0) for out, _ in outputs)


async def test_a_flood_from_a_stranger_port_neither_pauses_the_mix_nor_loses_the_desk(tmp_path):
    async with recording_desk() as desk:
        async with running_bridge(desk, tmp_path, override_hold_s=HOLD_S, poll_period_s=POLL_S,
                                  liveness_timeout_s=LIVENESS_S) as bridge:
            await wait_for(lambda: bridge.engine.state.armed, timeout_s=3)
            steps = bridge.engine.status.steps
            seconds = 3.0
            sent = await flood(bridge.peer, seconds)
            steps = bridge.engine.status.steps - steps
            await asyncio.sleep(1.2)
            assert bridge.engine.state.armed and not bridge.engine.state.hold
    assert not any(r["kind"] == "desk" and r["what"] == "lost" for r in bridge.records)
    print(f"\nflood: {sent / seconds:,.0f} datagrams/s for {seconds:g} s from a stranger port; "
          f"{bridge.driver.stats.dropped_in_kernel:,} dropped in the kernel, "
          f"{steps} control steps ({steps / seconds:.1f}/s)")
    assert bridge.driver.stats.dropped_in_kernel > 0.5 * sent
    assert bridge.engine.status.engineer_moves == 0

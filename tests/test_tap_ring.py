"""The tap ring's protocol: a copy the writer raced is refused, never handed out torn; in one process and across two."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ailive.bridge.audio import tap_ring
from ailive.bridge.audio.tap_ring import WRITING, WRITTEN, RingOrderError, TapRing

CHANNELS = 3
PERIOD = 64


def counting(start_frame: int, frames: int, channels: int = CHANNELS) -> list[np.ndarray]:
    """One buffer per channel whose samples are their own frame index (exact in float32 below 2**24)."""
    return [np.arange(start_frame, start_frame + frames, dtype=np.float32)] * channels


@pytest.fixture
def ring():
    ring = TapRing.create(CHANNELS, 4 * PERIOD)
    yield ring
    ring.unlink()
    ring.close()


def write_periods(ring: TapRing, count: int) -> None:
    for _ in range(count):
        ring.write(counting(ring.written, PERIOD), PERIOD)


def test_published_frames_read_back_in_order_across_the_wrap(ring):
    write_periods(ring, 7)  # the ring holds four periods: this wrapped
    assert ring.available() == 7 * PERIOD
    block = ring.read(5 * PERIOD - 10, PERIOD + 20)  # crosses the end of the ring's storage
    assert block is not None
    np.testing.assert_array_equal(block, np.array(counting(5 * PERIOD - 10, PERIOD + 20)))


def test_the_writer_claims_a_period_before_it_changes_a_sample(ring):
    write_periods(ring, 2)
    seen = {}

    def buffers():
        seen["claimed"], seen["published"] = int(ring.header[WRITING]), int(ring.header[WRITTEN])
        yield from counting(2 * PERIOD, PERIOD)

    ring.write(buffers(), PERIOD)
    assert seen == {"claimed": 3 * PERIOD, "published": 2 * PERIOD}
    assert ring.available() == int(ring.header[WRITING]) == 3 * PERIOD


def test_a_write_racing_the_copy_gets_the_copy_refused(ring, monkeypatch):
    """The writer runs between the reader's copy and its check, as it can on another core."""
    write_periods(ring, 4)
    start = ring.available() - 4 * PERIOD  # the oldest period still in the ring
    copy = ring.copy_span

    def copy_then_the_writer_overwrites(start_frame: int, frames: int) -> np.ndarray:
        samples = copy(start_frame, frames)
        write_periods(ring, 1)  # reuses the slots of frames start..start+PERIOD
        return samples

    monkeypatch.setattr(ring, "copy_span", copy_then_the_writer_overwrites)
    assert ring.read(start, 2 * PERIOD) is None
    assert ring.read(ring.available() - 3 * PERIOD, PERIOD) is not None  # a copy the next write leaves alone passes


def test_a_claimed_period_refuses_the_copy_even_before_it_is_published(ring):
    """A period the writer is still copying in (claimed, not published) already makes its slots off limits."""
    write_periods(ring, 4)
    start = ring.available() - 4 * PERIOD
    samples = ring.copy_span(start, PERIOD)
    ring.header[WRITING] = ring.available() + PERIOD  # the writer, halfway through its next period
    assert not ring.intact_since(start)
    np.testing.assert_array_equal(samples, np.array(counting(start, PERIOD)))  # this copy was fine, but cannot be known


def test_without_a_fence_only_an_ordered_cpu_opens_a_ring(monkeypatch):
    monkeypatch.setattr(tap_ring, "_ATOMIC_THREAD_FENCE", None)
    monkeypatch.setattr(tap_ring.platform, "machine", lambda: "aarch64")
    with pytest.raises(RingOrderError, match="apt-get install libatomic1"):
        TapRing.create(1, PERIOD)
    monkeypatch.setattr(tap_ring.platform, "machine", lambda: "x86_64")
    ring = TapRing.create(1, PERIOD)
    ring.unlink()
    ring.close()


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from ailive.bridge.audio.tap_ring import TapRing
    path, channels, ring_frames, period, periods = sys.argv[1], *map(int, sys.argv[2:])
    ring = TapRing.attach(Path(path), channels, ring_frames)
    print("ready", flush=True)
    sys.stdin.readline()
    for index in range(periods):
        start = index * period
        ring.write([np.arange(start, start + period, dtype=np.float32)] * channels, period)
    ring.close()
""")


def test_a_writer_in_another_process_never_hands_the_reader_a_torn_block():
    """A writer process as fast as it can go over a four-period ring; the reader copies spans that straddle
    periods, some right behind the writer and some at the edge it is overwriting: every span the ring accepts
    is exactly the frames it names, sample for sample on every channel."""
    periods = 60_000
    ring = TapRing.create(CHANNELS, 4 * PERIOD)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(ring.path), str(CHANNELS), str(ring.ring_frames),
                               str(PERIOD), str(periods)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "ready\n"
        writer.stdin.write("go\n")
        writer.stdin.flush()
        accepted = refused = 0
        lags = [PERIOD + 5, 2 * PERIOD, 3 * PERIOD + 17, 4 * PERIOD - 3, 4 * PERIOD]
        span = PERIOD + 29
        turn = 0
        while writer.poll() is None or turn == 0:
            available = ring.available()
            lag = lags[turn % len(lags)]
            turn += 1
            if available < lag:
                continue
            start = available - lag
            block = ring.read(start, min(span, lag))
            if block is None:
                refused += 1
                continue
            accepted += 1
            expected = np.arange(start, start + block.shape[1], dtype=np.float32)
            assert np.array_equal(block, np.broadcast_to(expected, block.shape)), (start, block[:, :4], block[:, -4:])
        assert writer.wait() == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        ring.unlink()
        ring.close()
    print(f"accepted {accepted} spans, refused {refused}")
    assert accepted > 0

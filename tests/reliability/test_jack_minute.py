"""A timed run (``make soak``): a minute of sixteen channels through the bridge in its own process, without an xrun.

Whether a Python JACK client keeps its deadline depends on what else runs
on the machine, so this is not in ``make test``; ``make test`` checks the
same capture path by its samples (``tests/test_sources.py``).
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.jackserver import JackPlayer
from tests.test_bridge_jack import RATE, show_file_for
from tests.signals import noise_channels
from tests.test_cli import AILIVE, RunningSim


def _sixty_second_run(jack_server, tmp_path: Path, attempt: int) -> tuple[int, list[str], list[str]]:
    sim = RunningSim("x32")
    try:
        levels = [-12.0 - (i % 5) * 3 for i in range(16)]
        with JackPlayer(jack_server.name, noise_channels(levels, 5.0, RATE, 11), RATE) as player:
            show = show_file_for(tmp_path / f"show16-{attempt}.toml", player.output_ports, sim.port)
            log_before = len(jack_server.log_text().splitlines())
            result = subprocess.run([*AILIVE, "run", str(show), "--source", "jack", "--jack-server", jack_server.name,
                                     "--arm", "--duration", "60", "--headless", "--journal", str(tmp_path / f"j{attempt}")],
                                    capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        match = re.search(r"(\d+) steps, (\d+) moves, \d+ engineer moves, (\d+) xruns", result.stderr)
        assert match, result.stderr
        steps, moves, xruns = map(int, match.groups())
        assert steps >= 1150  # 60 s of 50 ms steps: none lost
        assert moves > 0
        timeline = [line[:60] for line in result.stdout.splitlines() if "xruns=0 " not in line]
        late = sorted({line for line in jack_server.log_text().splitlines()[log_before:] if "not finished" in line})
        return xruns, timeline[:3], late
    finally:
        sim.stop()


@pytest.mark.soak
def test_sixty_seconds_of_sixteen_channels_without_an_xrun(jack_server, tmp_path):
    """48 kHz, 256-frame periods, 16 channels, the bridge in its own process as in production.

    A second full minute is run when the first had an xrun, and both are
    reported (a neighbour saturating both cores makes any Python JACK client
    late); one clean minute is required.
    """
    attempts = []
    for attempt in range(2):
        xruns, timeline, late = _sixty_second_run(jack_server, tmp_path, attempt)
        attempts.append((xruns, timeline, late))
        print(f"attempt {attempt + 1}: {xruns} xruns {late}")
        if xruns == 0:
            break
    assert attempts[-1][0] == 0, attempts

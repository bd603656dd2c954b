"""``ailive demo --headless``: the embedded default produces real, checkable output."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import soundfile as sf

from ailive.bridge.journal import read_records


def test_headless_demo_writes_real_outputs(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "ailive.bridge.cli", "demo", "--headless", "--out", str(out)],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "demo done" in result.stdout

    mix, rate = sf.read(out / "mix.wav")
    raw, raw_rate = sf.read(out / "raw.wav")
    assert rate == raw_rate == 44100 and mix.shape == raw.shape and len(mix) > 20 * rate
    difference_db = 20 * np.log10(np.sqrt(np.mean((mix - raw) ** 2)) / np.sqrt(np.mean(raw ** 2)))
    assert difference_db > -30  # the faders changed the mix audibly, not by rounding

    records = read_records(out / "journal" / "x32-demo.jsonl")
    moves = [r for r in records if r["kind"] == "move"]
    assert len(moves) > 20
    assert all(r["ch"] != 8 for r in moves)  # talkback is excluded
    whats = [r.get("what") for r in records if r["kind"] == "event"]
    assert "armed" in whats and "override" in whats and "override-ended" in whats

    png = (out / "faders.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000

    summary = json.loads((out / "summary.json").read_text())
    assert summary["moves"] == len(moves)
    assert summary["engineer_moves"] >= 1
    error = summary["gain_error_db"]
    assert error["bridge_max"] < error["raw_max"]  # closer to the intended balance than unity faders


def test_demo_for_an_unknown_desk_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ailive.bridge.cli", "demo", "--headless", "--desk", "yamaha",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "no demo for desk 'yamaha'" in result.stderr

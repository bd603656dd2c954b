"""Smoke runs of the benchmarks: they run, and what they write is well formed (numbers come from `make bench`)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_control_step_smoke(tmp_path):
    out = tmp_path / "control_step.json"
    result = subprocess.run([sys.executable, str(BENCHMARKS / "control_step.py"), "--steps", "60", "--channels", "8",
                             "--models", "unity", "loudness", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["control_step"]
    assert [(r["model"], r["channels"]) for r in rows] == [("unity", 8), ("loudness", 8)]
    assert all(0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"] for r in rows)
    assert rows[1]["moves"] > 0


def test_desk_tracking_smoke(tmp_path):
    result = subprocess.run([sys.executable, str(BENCHMARKS / "desk_tracking.py"), "--moves", "20",
                             "--out", str(tmp_path / "desk_tracking.json")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "external_move_to_event" in result.stdout
    assert json.loads((tmp_path / "desk_tracking.json").read_text())["write_to_desk_holds"]["n"] == 20

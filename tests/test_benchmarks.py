"""Smoke runs of the benchmarks: they run, and what they write is well formed (numbers come from `make bench`)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ailive.models.logmel import StreamingLogMel
from ailive.models.registry import load_model
from benchmarks.naive_alm import NaiveAlm
from tests.jackserver import jack_available

ROOT = Path(__file__).resolve().parent.parent
MODELS = ["unity", "dugan", "loudness", "alm-mr", "alm-sr", "alm-mr+worker", "naive-alm-mr", "naive-alm-sr"]


def _frames(channels: int, steps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [(rng.standard_normal((channels, 2400)) * 0.05).astype(np.float32) for _ in range(steps)]


def test_naive_patch_is_the_streaming_patch(exported_models):
    """The naive ALM's full recompute and the runtime's incremental log-mel give the same patch."""
    naive = NaiveAlm(load_model(str(exported_models["mr"][1])))
    state = naive.initial_state(3, 48000)
    streaming = StreamingLogMel(48000, naive.runtime.spec_card.spec)
    features = streaming.initial_state(3)
    for frame in _frames(3, 25):
        naive.step(state, frame)
        streaming.push(features, frame)
    np.testing.assert_allclose(naive.patch(state), streaming.patch(features), atol=1e-9)


@pytest.mark.parametrize("variant", ["mr", "sr"])
def test_naive_first_step_matches_the_runtime(exported_models, variant):
    """On the first frame both run both graphs on the same inputs, so their gains agree."""
    runtime = load_model(str(exported_models[variant][1]))
    naive = NaiveAlm(load_model(str(exported_models[variant][1])))
    frame = _frames(4, 1)[0]
    expected, _ = runtime.step(runtime.initial_state(4, 48000), frame)
    got, _ = naive.step(naive.initial_state(4, 48000), frame)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_bench_smoke(tmp_path, exported_models):
    """``make bench`` in miniature: every section runs and latest.json / latest.md hold what the README links."""
    reason = jack_available()
    if reason is not None:
        pytest.skip(reason)
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(tmp_path),
         "--alm-mr", str(exported_models["mr"][1]), "--alm-sr", str(exported_models["sr"][1])],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "latest.json").read_text())

    rows = data["control_step"]
    assert [(r["model"], r["channels"]) for r in rows] == [(m, 8) for m in MODELS]
    assert all(0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"] for r in rows)
    assert all(r["steps"] == (3 if r["model"].startswith("naive-") else 20) for r in rows)
    assert {(r["model"], r["channels"]) for r in data["side_by_side"]} == {("alm-mr", 8), ("alm-sr", 8)}
    assert [w["source"] for w in data["weights"]] == ["folder", "folder"]
    assert {"cpu", "cores", "date_utc", "onnxruntime", "jackd"} <= data["machine"].keys()

    assert isinstance(data["xruns"], int)
    (safety,) = data["audio_safety"]
    assert (safety["channels"], safety["period_frames"], safety["hog_cpu"]) == (32, 256, 1)
    assert safety["tap"]["callbacks"] > 0 and safety["player"]["callbacks"] > 0 and safety["engine"]["steps"] > 0
    at_32 = data["load"][0]
    assert data["cpu_percent_32ch"] == pytest.approx(at_32["bridge_process"]["cpu_percent"] + at_32["tap_process"]["cpu_percent"])
    assert data["rss_mb_32ch"] == pytest.approx(at_32["bridge_process"]["rss_mb"] + at_32["tap_process"]["rss_mb"])
    assert 0 < data["pss_mb_32ch"] < data["rss_mb_32ch"]
    assert at_32["tap_process"]["jack_shm_mb"] > 0 and at_32["bridge_process"]["jack_shm_mb"] == 0  # JACK lives in the tap
    assert [r["channels"] for r in data["load"]] == [32]

    assert [r["model"] for r in data["desk_traffic"]] == ["loudness", "alm-mr"]
    assert data["desk_traffic"][0]["writes"] > 0
    assert data["desk_tracking"]["write_to_desk_holds"]["n"] == 10
    assert {t["what"] for t in data["targets"]} >= {"bridge + tap CPU, ALM, 32 ch", "bridge + tap memory (PSS), ALM, 32 ch",
                                                    "bridge + tap RSS added, ALM, 32 ch"}

    page = (tmp_path / "latest.md").read_text()
    for heading in ("# Benchmarks", "## Targets", "## Control step", "## Side by side", "## Audio safety",
                    "## CPU and memory", "## Desk traffic"):
        assert heading in page
    assert list(tmp_path.glob("bench-*.json"))

"""The issue's targets checked against a run, and the Markdown page of its tables."""
from __future__ import annotations

from typing import Any

#: The numbers the bridge must reach: the first rung, and the second (ALM-MR's step, the bridge's memory, xruns at 128 frames).
P99_MS = {32: 5.0, 64: 10.0}
ALM_MR_P99_MS = {32: 2.5, 64: 5.0}
CPU_PERCENT_32CH = 25.0
RSS_MB_32CH = 300.0
BRIDGE_RSS_MB_32CH = 150.0
XRUNS_AT_256 = 0
XRUNS_AT_128 = 0
WRITES_PER_ADDRESS_PER_S = 30.0


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target: what, the bound, the measured value, met or not (None when the run did not measure it)."""
    rows = []
    for r in results["control_step"]:
        if r["channels"] in P99_MS and not str(r["model"]).startswith("naive-"):
            bound = P99_MS[r["channels"]]
            rows.append({"what": f"control step p99, {r['model']}, {r['channels']} ch", "target": f"< {bound:g} ms",
                         "value": round(r["p99_ms"], 2), "met": r["p99_ms"] < bound})
        if str(r["model"]).startswith("alm-mr") and r["channels"] in ALM_MR_P99_MS:
            bound = ALM_MR_P99_MS[r["channels"]]
            rows.append({"what": f"second rung: control step p99, {r['model']}, {r['channels']} ch", "target": f"< {bound:g} ms",
                         "value": round(r["p99_ms"], 2), "met": r["p99_ms"] < bound})
    cpu, xruns = results.get("cpu_percent_32ch"), results.get("xruns")
    rows.append({"what": "bridge + tap CPU, ALM, 32 ch", "target": f"< {CPU_PERCENT_32CH:g} % of a core",
                 "value": None if cpu is None else round(cpu, 1), "met": None if cpu is None else cpu < CPU_PERCENT_32CH})
    for what, key in (("memory (PSS)", "pss_mb_32ch"), ("RSS added", "rss_mb_32ch")):
        mb = results.get(key)
        rows.append({"what": f"bridge + tap {what}, ALM, 32 ch", "target": f"< {RSS_MB_32CH:g} MB",
                     "value": None if mb is None else round(mb, 1), "met": None if mb is None else mb < RSS_MB_32CH})
    bridge_mb = next((r["bridge_process"]["rss_mb"] for r in results.get("load", []) if r["channels"] == 32), None)
    rows.append({"what": "second rung: the bridge process alone, RSS, ALM, 32 ch", "target": f"< {BRIDGE_RSS_MB_32CH:g} MB",
                 "value": None if bridge_mb is None else round(bridge_mb, 1),
                 "met": None if bridge_mb is None else bridge_mb < BRIDGE_RSS_MB_32CH})
    rows.append({"what": "xruns, 32 ch, 256 frames, CPU hog", "target": f"{XRUNS_AT_256}",
                 "value": xruns, "met": None if xruns is None else xruns <= XRUNS_AT_256})
    at_128 = results.get("xruns_by_period", {}).get("128")
    rows.append({"what": "second rung: xruns, 32 ch, 128 frames, CPU hog", "target": f"{XRUNS_AT_128}",
                 "value": at_128, "met": None if at_128 is None else at_128 <= XRUNS_AT_128})
    for r in results["desk_traffic"]:
        rows.append({"what": f"writes per fader in any 1 s, {r['model']}", "target": f"<= {WRITES_PER_ADDRESS_PER_S:g}",
                     "value": r["per_fader_max_1s"], "met": r["per_fader_max_1s"] <= WRITES_PER_ADDRESS_PER_S})
    return rows


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "**no**"
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
        return str(value)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _safety_table(rows: list[dict[str, Any]]) -> str:
    return _table(["period", "xruns", "from start", "callback p50/p99/max us", "start delay p99/max us (period)",
                   "player's start delay p99/max us", "DSP load p50/p99/max %", "player only: DSP % / xruns",
                   "bridge CPU %", "step p99 ms"],
                  [[r["period_frames"], r["xruns"], r["xruns_from_start"],
                    f"{r['tap']['callback_p50_us']:.0f} / {r['tap']['callback_p99_us']:.0f} / {r['tap']['callback_max_us']:.0f}",
                    f"{r['tap']['start_delay_p99_us']:.0f} / {r['tap']['start_delay_max_us']:.0f} ({r['tap']['period_us']:.0f})",
                    f"{r['player']['start_delay_p99_us']:.0f} / {r['player']['start_delay_max_us']:.0f}",
                    f"{r['dsp_load_p50_percent']:.1f} / {r['dsp_load_p99_percent']:.1f} / {r['dsp_load_max_percent']:.1f}",
                    f"{r['dsp_load_player_only_p50_percent']:.1f} / {r['xruns_player_only']} in {r['player_only_s']:g} s",
                    r["cpu_percent"], r["engine"]["latency_ms"].get("p99")] for r in rows])


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.1f} %"


def markdown(results: dict[str, Any]) -> str:
    m, c, s = results["machine"], results["conditions"], results["settings"]
    weights = ", ".join(f"{w['name']}: {w['source']} ({w['parameters']:,} parameters)" for w in results["weights"])
    after = c.get("after", {})
    switch = f"{s['switch_interval_ms']:g} ms (an experiment)" if s.get("switch_interval_ms") else "Python's default (5 ms), as shipped"
    parts = [
        "# Benchmarks",
        f"Run {m['date_utc']} UTC on {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB "
        f"({m['platform']}; Python {m['python']}, numpy {m['numpy']}, ONNX Runtime {m['onnxruntime']}, {m['jackd']}; "
        f"commit {m['commit']}). `make bench` ({'smoke run: numbers mean nothing' if s['smoke'] else 'full run'}).",
        f"Load: machine {c['busy_percent_before']} % busy in the second before (load average {c['loadavg'][0]}), "
        f"{after.get('busy_percent_before', '-')} % after. {c.get('note', '')}".strip(),
        f"ALM weights: {weights}. Timing depends on the architecture, not on the weights.",
        "## Targets",
        _table(["what", "target", "measured", "met"], [[t["what"], t["target"], t["value"], t["met"]] for t in results["targets"]]),
        "## Control step",
        f"Features + model + policy + OSC send, in-process on a virtual clock against the desk simulator; "
        f"{s['steps']} timed steps per row ({s['naive_steps']} for the naive ALM) after a warm-up. "
        "Fractions are of the 50 ms control frame.",
        _table(["model", "ch", "steps", "p50 ms", "p99 ms", "max ms", "p50", "p99", "max", "moves"],
               [[r["model"], r["channels"], r["steps"], r["p50_ms"], r["p99_ms"], r["max_ms"], _pct(r["p50_frame_fraction"]),
                 _pct(r["p99_frame_fraction"]), _pct(r["max_frame_fraction"]), r["moves"]] for r in results["control_step"]]),
        "## Side by side: streaming ALM vs. naive",
        "Naive: the whole 96-frame log-mel recomputed and the slow graph run every step (no incremental features, "
        "no rate split), with the same ONNX sessions and formulas. Ratio = naive / streaming.",
        _table(["model", "ch", "streaming p50 ms", "naive p50 ms", "p50 ratio", "streaming p99 ms", "naive p99 ms", "p99 ratio"],
               [[r["model"], r["channels"], r["streaming_p50_ms"], r["naive_p50_ms"], f"{r['p50_ratio']:.1f}x",
                 r["streaming_p99_ms"], r["naive_p99_ms"], f"{r['p99_ratio']:.1f}x"] for r in results["side_by_side"]]),
        "## Audio safety (real jackd, dummy driver, 48 kHz)",
        f"The bridge (`ailive run`'s path, alm-mr) tapping {s['safety_channels']} channels for {s['safety_seconds']:g} s after a "
        f"warm-up, jackd, the player and the bridge on core {s['bridge_cpu']}, a busy loop on core {s['hog_cpu']}. Xruns as the server "
        "reports them (in the measured window; and from the bridge's start). Callback: the tap's own time; "
        "start delay: how much later than one period after the previous one a callback began (waiting for the CPU; "
        "the tap runs in a process of its own, so never for the control loop's GIL); "
        "DSP load: JACK's, sampled every 100 ms, the player standing in for the desk's card (a process of its own) included. "
        f"GIL switch interval: {switch}.",
        _safety_table(results["audio_safety"]),
        "## CPU and memory (real time, alm-mr, 256 frames, no hog)",
        f"CPU time over {s['load_seconds']:g} s of wall clock, all threads, as % of one core, of the bridge and its JACK "
        "tap process together and each; memory at the end. RSS is the two processes' resident sets added (shared "
        "libraries and the ring counted twice: the bound the targets use); PSS counts each shared page once. The "
        "tap's RSS includes JACK's shared port memory, which every JACK client maps whole.",
        _table(["ch", "CPU %", "bridge CPU %", "tap CPU %", "RSS MB", "PSS MB", "bridge RSS MB", "tap RSS MB",
                "tap JACK shm MB", "step p50 ms", "step p99 ms", "xruns", "moves"],
               [[r["channels"], r["cpu_percent"], r["bridge_process"]["cpu_percent"], r["tap_process"]["cpu_percent"],
                 r["rss_mb"], r["pss_mb"], r["bridge_process"]["rss_mb"], r["tap_process"]["rss_mb"],
                 r["tap_process"]["jack_shm_mb"], r["engine"]["latency_ms"].get("p50"),
                 r["engine"]["latency_ms"].get("p99"), r["xruns"], r["engine"]["moves"]]
                for r in results["load"]]),
        "## Desk traffic (demo material, X32 demo show)",
        "OSC fader writes the desk accepted, on the audio clock, while armed; max over any 1 s window. "
        "X32 guideline: at most ~30 per address per second.",
        _table(["model", "s", "faders", "writes", "writes/s", "per fader /s", "busiest fader /s", "max 1 s per fader",
                "max 1 s all faders"],
               [[r["model"], r["seconds"], r["faders"], r["writes"], r["writes_per_s"], r["per_fader_mean_per_s"],
                 r["per_fader_busiest_mean_per_s"], r["per_fader_max_1s"], r["all_faders_max_1s"]] for r in results["desk_traffic"]]),
        "## Desk tracking (driver and X32 simulator on loopback)",
        _table(["measure", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"],
               [[name, r["n"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"]] for name, r in results["desk_tracking"].items()]),
    ]
    return "\n\n".join(parts) + "\n"

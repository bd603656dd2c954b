"""Every benchmark in one run (``make bench``): writes ``latest.json`` and ``latest.md`` in the results folder.

Also keeps a dated copy of the JSON beside them. ``--smoke`` runs each
section for a few steps or seconds (the test suite does, to prove the
harness works); its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
from pathlib import Path

from . import control_step, desk_tracking, desk_traffic, report
from .common import RESULTS, load_conditions, machine
from .live import LiveRun, run_live
from .weights import VARIANTS

#: The model the live sections run: the multi-rate ALM runs its fast graph every step, the heavier of the two.
LIVE_MODEL = "alm-mr"
ALL_MODELS = [*control_step.CLASSIC, *VARIANTS, f"{LIVE_MODEL}{control_step.WORKER}"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for latest.json / latest.md")
    parser.add_argument("--smoke", action="store_true", help="a few steps and seconds per section")
    parser.add_argument("--steps", type=int, default=2000, help="timed control steps per model and channel count")
    parser.add_argument("--naive-steps", type=int, default=500, help="timed steps of the naive ALM (each costs ~20x)")
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--safety-seconds", type=float, default=300.0)
    parser.add_argument("--periods", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--safety-channels", type=int, default=32)
    parser.add_argument("--load-seconds", type=float, default=60.0)
    parser.add_argument("--load-channels", type=int, nargs="+", default=None,
                        help="channel counts of the CPU and memory runs (default: --channels; 32 always)")
    parser.add_argument("--traffic-models", nargs="+", default=[*control_step.CLASSIC, *VARIANTS])
    parser.add_argument("--switch-interval-ms", type=float, default=None,
                        help="an experiment: the bridge's Python GIL switch interval (default: Python's, as shipped)")
    parser.add_argument("--hog-cpu", type=int, default=1, help="the core the CPU hog holds during the safety run")
    parser.add_argument("--bridge-cpu", type=int, default=0, help="the core jackd and the bridge share meanwhile")
    parser.add_argument("--moves", type=int, default=500, help="desk-tracking moves")
    parser.add_argument("--note", default="", help="what else ran on the machine (goes into the results)")
    control_step.add_weights_options(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.naive_steps, args.channels = 20, 3, [8]
        args.safety_seconds, args.periods, args.load_seconds, args.moves = 1.0, [256], 1.0, 10
        args.load_channels, args.traffic_models = [32], ["loudness", "alm-mr"]
    return args


def run(args: argparse.Namespace) -> dict[str, object]:
    warmup_s, busy_s = (0.5, 0.2) if args.smoke else (3.0, 1.0)
    results: dict[str, object] = {"machine": machine(), "conditions": {**load_conditions(busy_s), "note": args.note},
                                  "settings": {k: v for k, v in vars(args).items() if k not in ("out", *[n.replace("-", "_") for n in VARIANTS])}}
    weights = control_step.resolve_weights(args, list(VARIANTS))
    results["weights"] = [w.describe() for w in weights.values()]

    print("== control step", flush=True)
    rows = control_step.run(ALL_MODELS, args.channels, args.steps, weights)
    rows += control_step.run([f"naive-{n}" for n in VARIANTS], args.channels, args.naive_steps, weights)
    control_step.print_table(rows)
    results["control_step"] = rows
    results["side_by_side"] = control_step.side_by_side(rows)

    print("== desk traffic", flush=True)
    traffic = desk_traffic.run({name: weights[name].model if name in weights else name for name in args.traffic_models})
    desk_traffic.print_table(traffic)
    results["desk_traffic"] = traffic

    print("== desk tracking", flush=True)
    results["desk_tracking"] = asyncio.run(desk_tracking.measure(args.moves))

    live_model = weights[LIVE_MODEL].model
    print("== audio safety", flush=True)
    safety = [run_live(LiveRun(args.safety_channels, live_model, period, args.safety_seconds, warmup_s, hog_cpu=args.hog_cpu,
                               bridge_cpu=args.bridge_cpu, switch_interval_ms=args.switch_interval_ms, busy_sample_s=busy_s))
              for period in args.periods]
    results["audio_safety"] = safety
    by_period = {row["period_frames"]: row for row in safety}
    results["xruns"] = by_period[256]["xruns"] if 256 in by_period else None
    results["xruns_by_period"] = {str(p): row["xruns"] for p, row in by_period.items()}

    print("== CPU and memory", flush=True)
    load = [run_live(LiveRun(channels, live_model, 256, args.load_seconds, warmup_s,
                             switch_interval_ms=args.switch_interval_ms, busy_sample_s=busy_s))
            for channels in sorted(set(args.load_channels or args.channels) | {32})]  # 32 always: the targets are set there
    results["load"] = load
    at_32 = next(row for row in load if row["channels"] == 32)
    results["cpu_percent_32ch"] = at_32["cpu_percent"]
    results["rss_mb_32ch"] = at_32["rss_mb"]
    results["pss_mb_32ch"] = at_32["pss_mb"]
    results["conditions"]["after"] = load_conditions(busy_s)  # type: ignore[index]
    results["targets"] = report.targets(results)
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2)
    (args.out / "latest.json").write_text(text)
    (args.out / "latest.md").write_text(report.markdown(results))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M")
    (args.out / f"bench-{stamp}.json").write_text(text)
    print(report.markdown(results))
    print(f"saved {args.out / 'latest.json'} and {args.out / 'latest.md'}")


if __name__ == "__main__":
    main()

"""OSC codec cost: microseconds per encode and per decode of the messages the desk link sends and reads.

The bridge encodes at most one fader write per ridden channel per 50 ms
control step and decodes what the desk sends back (echoes, poll answers,
meters), so what matters is the cost per message against the step's 50 ms.
Each case is timed with ``timeit`` (best of 5 repeats); ``--label`` names the
codec measured (run it on two trees to compare them).
"""
from __future__ import annotations

import argparse
import json
import timeit
from pathlib import Path

from ailive.consoles import osc

from .common import RESULTS, machine

CASES: dict[str, tuple[str, str, tuple[osc.OscArg, ...]]] = {
    "fader write ,f": ("/ch/01/mix/fader", "f", (0.75,)),
    "query ,": ("/ch/01/mix/fader", "", ()),
    "name ,s": ("/ch/01/config/name", "s", ("Kick In",)),
    "wing answer ,sff": ("/ch/1/fdr", "sff", ("-10.0", 0.5, -10.0)),
    "meters ,b (256 B)": ("/meters/1", "b", (bytes(256),)),
}


def measure(number: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for name, (address, tags, args) in CASES.items():
        data = osc.encode(address, tags, args)
        encode_s = min(timeit.repeat(lambda: osc.encode(address, tags, args), number=number, repeat=5)) / number
        decode_s = min(timeit.repeat(lambda: osc.decode(data), number=number, repeat=5)) / number
        rows.append({"message": name, "bytes": len(data), "encode_us": round(encode_s * 1e6, 2),
                     "decode_us": round(decode_s * 1e6, 2)})
    return rows


def print_table(label: str, rows: list[dict[str, object]]) -> None:
    print(f"codec: {label}")
    print(f"{'message':20} {'bytes':>6} {'encode us':>10} {'decode us':>10}")
    for r in rows:
        print(f"{r['message']:20} {r['bytes']:6d} {r['encode_us']:10.2f} {r['decode_us']:10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=20000, help="calls per timing")
    parser.add_argument("--label", default="python-osc behind consoles/osc.py")
    parser.add_argument("--out", type=Path, default=RESULTS / "osc_codec.json")
    args = parser.parse_args()
    rows = measure(args.number)
    print_table(args.label, rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "codec": args.label, "osc_codec": rows}, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()

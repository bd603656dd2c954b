"""Tables for people: the profile list and the check report, drawn with rich."""
from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from .common import console, format_db


def print_profiles(rows: list[dict[str, Any]]) -> None:
    table = Table(title="Desk profiles")
    for column in ("name", "vendor", "transport/port", "channels", "fader law", "source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["name"], row["vendor"], f"{row['transport']}/{row['port']}", str(row["channels"]),
                      row["fader_law"], row["source_kind"] if row["source_kind"] == "built-in"
                      else f"{row['source_kind']}: {row['source']}")
    console().print(table)


def print_check(report: dict[str, Any]) -> None:
    out = console()
    out.print(f"show {report['show']} ({report['file']}): valid, profile {report['profile']}")
    out.print(f"desk {report['desk']}: {report['model']} firmware {report['firmware']}, named {report['desk_name']!r}")
    table = Table(title="Mapped channels")
    for column in ("desk ch", "JACK port", "show name", "desk name", "fader", "mute", "mode"):
        table.add_column(column)
    for ch in report["channels"]:
        db = -math.inf if ch["fader_db"] is None and ch["fader"] == 0 else ch["fader_db"]
        table.add_row(str(ch["desk_channel"]), ch["port"], ch["show_name"], ch["desk_name"] or "-",
                      format_db(math.nan if db is None else db), "muted" if ch["muted"] else "on", ch["mode"])
    out.print(table)
    out.print(f"subscription: {report['subscription']['note']}")
    jack = report["jack"]
    if jack["running"]:
        out.print(f"JACK: {len(jack['ports'])} output ports: {', '.join(jack['ports'][:8])}"
                      f"{' ...' if len(jack['ports']) > 8 else ''}")
        for port in jack["missing"]:
            out.print(f"problem: the show taps JACK port {port!r}, which this server does not offer")
    else:
        out.print(f"JACK: {jack['note']}")
    for note in report["notes"]:
        out.print(f"note: {note}")
    for problem in report["problems"]:
        out.print(f"problem: {problem}")

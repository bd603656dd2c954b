"""What ``ailive check`` reads: the desk's view of the mapped channels and the JACK ports on offer; nothing is written."""
from __future__ import annotations

import math
from typing import Any

from ailive.consoles.driver import OscDeskDriver

from ..show import Show


async def inspect_desk(show: Show, timeout_s: float) -> dict[str, Any]:
    from ailive.consoles.subscription import subscription_report

    # Reading needs no pushes, and taking a one-subscriber desk's subscription would stop another app's feedback.
    polls = (show.profile.poll_period_s if show.desk.poll_period_s is None else show.desk.poll_period_s) > 0
    driver = OscDeskDriver.for_show(show, reply_timeout_s=timeout_s, subscribe=False if polls else None)
    identity = await driver.connect()
    try:
        channels = []
        problems: list[str] = []
        notes: list[str] = []
        for mapped in show.channels:
            view = driver.view[mapped.desk_channel]
            if view.name and view.name.strip().lower() != mapped.name.strip().lower():
                notes.append(f"desk channel {mapped.desk_channel} is named {view.name!r} on the desk, {mapped.name!r} in the show file")
            if view.muted and mapped.mode == "auto":
                notes.append(f"desk channel {mapped.desk_channel} ({mapped.name}) is muted: the bridge will not write it until it is unmuted")
            channels.append({
                "desk_channel": mapped.desk_channel, "port": mapped.port, "show_name": mapped.name,
                "desk_name": view.name, "fader_db": None if math.isnan(view.fader_db) else view.fader_db,
                "fader": view.fader, "muted": view.muted, "mode": mapped.mode,
            })
        return {
            "show": show.name, "file": show.path, "profile": show.profile.name, "desk": str(show.desk),
            "model": identity.model, "firmware": identity.firmware, "desk_name": identity.name,
            "channels": channels, "problems": problems, "notes": notes,
            "subscription": subscription_report(show.profile),
        }
    finally:
        await driver.close()


def inspect_jack(show: Show, server_name: str | None) -> dict[str, Any]:
    """Which of the show's ports a running JACK server offers; no server is a note, not a failure."""
    from ..audio import AudioSourceError, jack_output_ports, match_port

    try:
        ports = jack_output_ports(server_name)
    except AudioSourceError as exc:
        return {"running": False, "note": str(exc), "ports": [], "missing": []}
    missing = []
    for mapped in show.channels:
        try:
            match_port(mapped.port, ports)
        except AudioSourceError:
            missing.append(mapped.port)
    return {"running": True, "ports": ports, "missing": missing}

"""What the web surface shows, as one JSON-ready dict per update: state, links, and one strip per channel.

Built from the engine's status and policy state, read-only, on the event
loop between control steps. The links (desk, audio, model) are judged here
by watching the counters move between updates, so the page can say "no
audio" or "model failing" while the bridge is disarmed too, when the policy
holds nothing and so says nothing.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from ailive.consoles.faderlaw import FaderLaw, position_of

from ..control import Mode
from ..engine import Engine, EngineStatus
from ..jsonsafe import payload_db
from .commands import PAYLOAD_VERSION

#: No new audio for this long and the audio link shows as down.
AUDIO_STALE_S = 0.5


level = payload_db  # a dB value for the page, as in MQTT payloads


def travel(law: FaderLaw, db: float) -> float | None:
    """Where a fader at ``db`` sits on the desk's own travel, 0 (off) .. 1 (top), so the page draws it as the desk does."""
    if math.isnan(db):
        return None
    return round(position_of(law, law.from_db(db)), 4)


def audio_kind(engine: Engine) -> str:
    return "jack" if hasattr(engine.source, "server_died") else "files"


@dataclass
class LinkWatch:
    """Remembers the audio clock and the model's error count, to tell a live link from a stalled one."""

    audio_time_s: float = -1.0
    audio_moved_at_s: float = -math.inf
    model_errors: int = 0
    model_failing: bool = False

    def update(self, status: EngineStatus, now_s: float) -> None:
        if status.audio_time_s != self.audio_time_s:
            self.audio_time_s = status.audio_time_s
            self.audio_moved_at_s = now_s
        self.model_failing = status.model_errors > self.model_errors
        self.model_errors = status.model_errors

    def audio_ok(self, now_s: float) -> bool:
        return now_s - self.audio_moved_at_s <= AUDIO_STALE_S


def links(engine: Engine, status: EngineStatus, watch: LinkWatch, now_s: float) -> dict[str, dict[str, Any]]:
    """Desk, audio and model: each ``ok`` and a short ``detail`` an engineer can act on."""
    kind = audio_kind(engine)
    died = bool(getattr(engine.source, "server_died", False))
    if died:
        audio_detail = f"JACK server gone: {getattr(engine.source, 'shutdown_reason', '') or 'shut down'}"
    elif not watch.audio_ok(now_s):
        audio_detail = "no audio"
    else:
        audio_detail = f"{'JACK' if kind == 'jack' else 'files'}, {status.xruns} xruns"
    return {
        "desk": {"ok": status.desk_connected, "detail": f"{engine.show.profile.name} {status.desk}"
                 + ("" if status.desk_connected else ": not answering")},
        "audio": {"ok": watch.audio_ok(now_s) and not died, "kind": kind, "detail": audio_detail},
        "model": {"ok": not watch.model_failing, "detail": f"{status.model}"
                  + (f", failing ({status.model_errors} errors)" if watch.model_failing else "")},
    }


def channel_strips(engine: Engine, status: EngineStatus) -> list[dict[str, Any]]:
    law = engine.show.profile.law
    show_modes = {c.desk_channel: c.mode for c in engine.show.channels}
    strips = []
    for ch in status.channels:
        policy = engine.state.channel(ch.channel)
        riding = status.armed and ch.mode == Mode.AUTO and not ch.hold_code
        target = policy.target_db if riding else math.nan
        strips.append({
            "ch": ch.channel, "name": ch.name, "mode": ch.mode, "locked": show_modes[ch.channel] == "excluded",
            "level_db": level(ch.level_db), "proposed_db": level(ch.proposed_db),
            "fader_db": level(ch.fader_db), "fader_pos": travel(law, ch.fader_db),
            "target_db": level(target), "target_pos": travel(law, target),
            "muted": ch.muted, "reason": ch.reason, "hold_code": ch.hold_code,
        })
    return strips


def state_payload(engine: Engine, watch: LinkWatch, seq: int, *, wall_clock_s: float | None = None,
                  now_s: float | None = None) -> dict[str, Any]:
    """One update for the page: everything it draws, nothing it must remember."""
    now_s = time.monotonic() if now_s is None else now_s
    status = engine.refresh()
    watch.update(status, now_s)
    return {
        "type": "state", "v": PAYLOAD_VERSION, "seq": seq,
        "t": round(time.time() if wall_clock_s is None else wall_clock_s, 3),
        "show": status.show, "armed": status.armed, "hold": status.hold, "hold_code": status.hold_code,
        "links": links(engine, status, watch, now_s),
        "audio_time_s": round(status.audio_time_s, 2), "moves": status.moves,
        "engineer_moves": status.engineer_moves, "xruns": status.xruns,
        "channels": channel_strips(engine, status),
        "events": list(status.last_events),
    }

"""Floats in JSON, one convention for the journal, MQTT and the web page.

JSON has no NaN or infinity. Unknown (NaN) is ``null``; a fader that is off
is ``"-inf"`` (and ``"inf"`` the other way); every other float is a number.
:func:`from_json` reads all three back, so what the journal writes, its
readers (restore, replay) take as it was.
"""
from __future__ import annotations

import math
from typing import Any

JsonFloat = float | str | None


def to_json(value: float, digits: int | None = None) -> JsonFloat:
    """``value`` for JSON; ``digits`` rounds a finite one (payloads show levels to 0.01 dB, the journal keeps all)."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return value if digits is None else round(value, digits)


def from_json(value: JsonFloat) -> float:
    """A float :func:`to_json` wrote (and the older ``"nan"`` text): ``null`` is NaN."""
    return math.nan if value is None else float(value)


def json_safe(value: Any) -> Any:
    """Every float inside dicts, lists and tuples made JSON-safe with :func:`to_json`; keys become text."""
    if isinstance(value, float):
        return to_json(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def payload_db(value: float | None) -> JsonFloat:
    """A level for a payload (MQTT, the page): 0.01 dB resolution, null when unknown, ``"-inf"`` when off."""
    return None if value is None else to_json(value, 2)

"""Meter blobs: per-channel levels as desks pack them, one codec per named decoder.

X32 sends int32 count then float32 linear levels, little-endian inside an OSC
blob; X-Air sends int16 values in 1/256 dB. A profile names its codec
(``meters.decoder``); nothing checks the desk's name.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Callable

from .errors import OscDecodeError

SILENCE_DB = -128.0


def _db_to_linear(db: float) -> float:
    return 0.0 if db <= SILENCE_DB else 10.0 ** (db / 20.0)


def _linear_to_db(value: float) -> float:
    return SILENCE_DB if value <= 0.0 else max(SILENCE_DB, 20.0 * math.log10(value))


def _encode_x32(levels_db: list[float]) -> bytes:
    return struct.pack(f"<i{len(levels_db)}f", len(levels_db), *(_db_to_linear(db) for db in levels_db))


def _decode_x32(blob: bytes) -> list[float]:
    count = _count(blob, 4)
    return [_linear_to_db(v) for v in struct.unpack_from(f"<{count}f", blob, 4)]


def _encode_xair(levels_db: list[float]) -> bytes:
    raw = [int(round(max(SILENCE_DB, min(db, 127.0)) * 256)) for db in levels_db]
    return struct.pack(f"<i{len(raw)}h", len(raw), *raw)


def _decode_xair(blob: bytes) -> list[float]:
    count = _count(blob, 2)
    return [v / 256.0 for v in struct.unpack_from(f"<{count}h", blob, 4)]


def _count(blob: bytes, width: int) -> int:
    if len(blob) < 4:
        raise OscDecodeError("meter blob has no count")
    (count,) = struct.unpack_from("<i", blob)
    if count < 0 or 4 + count * width > len(blob):
        raise OscDecodeError(f"meter blob says {count} values but holds {(len(blob) - 4) // width}")
    return count


@dataclass(frozen=True)
class MeterCodec:
    encode: Callable[[list[float]], bytes]  # levels in dBFS -> blob
    decode: Callable[[bytes], list[float]]  # blob -> levels in dBFS


METER_CODECS: dict[str, MeterCodec] = {
    "x32_blob": MeterCodec(_encode_x32, _decode_x32),
    "xair_int16": MeterCodec(_encode_xair, _decode_xair),
}

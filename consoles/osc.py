"""OSC 1.0 messages on the wire, strict in both directions.

The encoder takes the type tag explicitly (a desk drops a ``,i`` where it
expects ``,f``), and the decoder rejects anything that is not exactly one
well-formed message: truncated data, missing padding, unknown type tags,
bundles, non-ASCII addresses. Desks and simulators both use this one codec;
python-osc stays an independent peer for the tests.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from .errors import OscDecodeError

OscArg = int | float | str | bytes

#: Type tags this codec speaks: int32, float32, string, blob.
SUPPORTED_TAGS = frozenset("ifsb")
#: The largest datagram accepted; anything longer is hostile or broken.
MAX_DATAGRAM_BYTES = 65_507


@dataclass(frozen=True)
class OscMessage:
    """One decoded message: address, type tags (without the comma) and arguments."""

    address: str
    tags: str
    args: tuple[OscArg, ...]


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def _encode_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    if b"\x00" in raw:
        raise ValueError("OSC strings cannot contain NUL")
    return raw + b"\x00" * (_pad4(len(raw) + 1) - len(raw))


def _encode_arg(tag: str, value: OscArg) -> bytes:
    if tag == "i":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"OSC ,i needs an int, got {value!r}")
        return struct.pack(">i", value)
    if tag == "f":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"OSC ,f needs a number, got {value!r}")
        return struct.pack(">f", float(value))
    if tag == "s":
        if not isinstance(value, str):
            raise TypeError(f"OSC ,s needs a str, got {value!r}")
        return _encode_string(value)
    if tag == "b":
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"OSC ,b needs bytes, got {value!r}")
        blob = bytes(value)
        return struct.pack(">i", len(blob)) + blob + b"\x00" * (_pad4(len(blob)) - len(blob))
    raise ValueError(f"unsupported OSC type tag {tag!r}")


def encode(address: str, tags: str = "", args: tuple[OscArg, ...] | list[OscArg] = ()) -> bytes:
    """Build one OSC message with exactly the given type tags.

    An empty ``tags`` gives a bare address with the empty type tag string
    ``","``, which is how desks are queried.
    """
    if not address.startswith("/"):
        raise ValueError(f"OSC address must start with '/': {address!r}")
    if len(tags) != len(args):
        raise ValueError(f"{len(tags)} type tags for {len(args)} arguments")
    body = b"".join(_encode_arg(tag, value) for tag, value in zip(tags, args))
    return _encode_string(address) + _encode_string("," + tags) + body


def _read_string(data: bytes, start: int, what: str) -> tuple[str, int]:
    end = data.find(b"\x00", start)
    if end < 0:
        raise OscDecodeError(f"{what} is not NUL-terminated")
    stop = _pad4(end + 1)
    if stop > len(data):
        raise OscDecodeError(f"{what} padding is truncated")
    if any(data[end:stop]):
        raise OscDecodeError(f"{what} padding is not zero")
    try:
        return data[start:end].decode("utf-8"), stop
    except UnicodeDecodeError as exc:
        raise OscDecodeError(f"{what} is not UTF-8") from exc


def _read_fixed(data: bytes, start: int, fmt: str, what: str) -> tuple[int | float, int]:
    stop = start + 4
    if stop > len(data):
        raise OscDecodeError(f"{what} is truncated")
    return struct.unpack(fmt, data[start:stop])[0], stop


def decode(data: bytes) -> OscMessage:
    """Parse exactly one OSC message or raise :class:`OscDecodeError`."""
    if not isinstance(data, (bytes, bytearray)):
        raise OscDecodeError("datagram is not bytes")
    data = bytes(data)
    if len(data) > MAX_DATAGRAM_BYTES:
        raise OscDecodeError("datagram is too large")
    if len(data) < 8 or len(data) % 4:
        raise OscDecodeError(f"datagram length {len(data)} is not a padded OSC message")
    if data.startswith(b"#bundle"):
        raise OscDecodeError("OSC bundles are not accepted")
    address, pos = _read_string(data, 0, "address")
    if not address.startswith("/") or not address.isascii() or not address.isprintable():
        raise OscDecodeError("address is not a printable ASCII OSC address")
    if pos == len(data):
        return OscMessage(address, "", ())  # OSC 1.0 allows a message without type tags
    tag_text, pos = _read_string(data, pos, "type tags")
    if not tag_text.startswith(","):
        raise OscDecodeError("type tag string does not start with ','")
    tags = tag_text[1:]
    args: list[OscArg] = []
    for tag in tags:
        if tag == "i":
            value, pos = _read_fixed(data, pos, ">i", "int32")
        elif tag == "f":
            value, pos = _read_fixed(data, pos, ">f", "float32")
        elif tag == "s":
            value, pos = _read_string(data, pos, "string")
        elif tag == "b":
            size, pos = _read_fixed(data, pos, ">i", "blob size")
            assert isinstance(size, int)
            stop = pos + _pad4(size)
            if size < 0 or stop > len(data):
                raise OscDecodeError("blob is truncated")
            value, pos = data[pos : pos + size], stop
        else:
            raise OscDecodeError(f"unsupported type tag {tag!r}")
        args.append(value)
    if pos != len(data):
        raise OscDecodeError("trailing bytes after the last argument")
    return OscMessage(address, tags, tuple(args))


def as_finite_float(value: OscArg) -> float | None:
    """A numeric argument as a finite float, or None when it is not one."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None

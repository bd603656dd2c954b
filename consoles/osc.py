"""OSC 1.0 messages on the wire, strict in both directions, built and parsed by python-osc.

The encoder takes the type tag explicitly (a desk drops a ``,i`` where it
expects ``,f``) and checks each argument's type before python-osc's builder
writes it. The decoder lets python-osc's parser read the datagram, then
keeps only exactly one well-formed message: no bundles, only the type tags
this codec speaks, a printable ASCII address, and the canonical bytes of
what was read (zero padding, nothing after the last argument), so
truncated or padded-out data never passes for a message.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage as _ParsedMessage
from pythonosc.osc_message import ParseError
from pythonosc.osc_message_builder import BuildError, OscMessageBuilder

from .errors import OscDecodeError

OscArg = int | float | str | bytes

#: Type tags this codec speaks: int32, float32, string, blob.
_TAGS = "ifsb"
#: The largest datagram accepted (the largest UDP payload over IPv4); anything longer is hostile or broken.
MAX_DATAGRAM_BYTES = 65_507


@dataclass(frozen=True)
class OscMessage:
    """One decoded message: address, type tags (without the comma) and arguments."""

    address: str
    tags: str
    args: tuple[OscArg, ...]


def _check_arg(tag: str, value: OscArg) -> OscArg:
    """The value python-osc is to write under ``tag``, or TypeError/ValueError when it does not fit."""
    if tag == "i":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"OSC ,i needs an int, got {value!r}")
        if not -(2**31) <= value < 2**31:
            raise ValueError(f"OSC ,i holds 32 bits, not {value}")
        return value
    if tag == "f":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"OSC ,f needs a number, got {value!r}")
        return float(value)
    if tag == "s":
        if not isinstance(value, str):
            raise TypeError(f"OSC ,s needs a str, got {value!r}")
        if "\x00" in value:
            raise ValueError("OSC strings cannot contain NUL")
        return value
    if tag == "b":
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"OSC ,b needs bytes, got {value!r}")
        return bytes(value)
    raise ValueError(f"unsupported OSC type tag {tag!r}")


def encode(address: str, tags: str = "", args: tuple[OscArg, ...] | list[OscArg] = ()) -> bytes:
    """Build one OSC message with exactly the given type tags.

    An empty ``tags`` gives a bare address with the empty type tag string
    ``","``, which is how desks are queried.
    """
    if not address.startswith("/"):
        raise ValueError(f"OSC address must start with '/': {address!r}")
    if "\x00" in address:
        raise ValueError("OSC strings cannot contain NUL")
    if len(tags) != len(args):
        raise ValueError(f"{len(tags)} type tags for {len(args)} arguments")
    builder = OscMessageBuilder(address)
    for tag, value in zip(tags, args):
        builder.add_arg(_check_arg(tag, value), tag)
    try:
        return builder.build().dgram
    except (BuildError, struct.error) as exc:  # a float beyond float32's range, a string python-osc cannot write
        raise ValueError(f"cannot encode {address} ,{tags}: {exc}") from None


def decode(data: bytes) -> OscMessage:
    """Parse exactly one OSC message or raise :class:`OscDecodeError`."""
    if not isinstance(data, (bytes, bytearray)):
        raise OscDecodeError("datagram is not bytes")
    data = bytes(data)
    if len(data) > MAX_DATAGRAM_BYTES:
        raise OscDecodeError("datagram is too large")
    if len(data) < 4 or len(data) % 4:
        raise OscDecodeError(f"datagram length {len(data)} is not a padded OSC message")
    if OscBundle.dgram_is_bundle(data):
        raise OscDecodeError("OSC bundles are not accepted")
    try:
        parsed = _ParsedMessage(data)
        address, tags, args = parsed.address, _tags_of(data), tuple(parsed.params)
    except (ParseError, IndexError, ValueError, TypeError, struct.error) as exc:
        raise OscDecodeError(f"not an OSC message: {exc}") from None
    if not address.startswith("/") or not address.isascii() or not address.isprintable():
        raise OscDecodeError("address is not a printable ASCII OSC address")
    unknown = set(tags or "") - set(_TAGS)
    if unknown:
        raise OscDecodeError(f"unsupported type tag {min(unknown)!r}")
    message = OscMessage(address, tags or "", args)
    try:
        canonical = _address_only(address) if tags is None else encode(address, tags, args)
    except ValueError as exc:  # what python-osc reads but will not write (an empty blob)
        raise OscDecodeError(f"not a message this codec speaks: {exc}") from None
    if canonical != data:
        raise OscDecodeError("padding is not zero, a field is truncated, or bytes trail the last argument")
    return message


def _tags_of(data: bytes) -> str | None:
    """The type tags as sent, None when there are none (python-osc reads ``T``/``F``/``N`` into values with no
    tag of their own, so its params alone cannot tell)."""
    start = (data.index(b"\x00") + 4) & ~3
    if start >= len(data):
        return None  # OSC 1.0 allows a message without type tags
    end = data.index(b"\x00", start)
    text = data[start:end].decode("ascii")
    if not text.startswith(","):
        raise ValueError("type tag string does not start with ','")
    return text[1:]


def _address_only(address: str) -> bytes:
    raw = address.encode("ascii")
    return raw + b"\x00" * (4 - len(raw) % 4)


def as_finite_float(value: OscArg) -> float | None:
    """A numeric argument as a finite float, or None when it is not one."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None

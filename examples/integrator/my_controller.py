"""Software an integrator writes, the kind the ``ailive_desk`` fixture tests: a tiny client for the X32 dialect.

It knows nothing of ailive: it speaks OSC through python-osc, subscribes with
``/xremote``, remembers every fader value the desk pushes or answers, and can
set a fader. Its tests (``test_my_controller.py``) run it against a simulated
desk instead of a real one.
"""
from __future__ import annotations

import asyncio
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder


def fader_address(channel: int) -> str:
    return f"/ch/{channel:02d}/mix/fader"


def _message(address: str, *args: tuple[Any, str]) -> bytes:
    builder = OscMessageBuilder(address)
    for value, tag in args:
        builder.add_arg(value, tag)
    return builder.build().dgram


class MiniController(asyncio.DatagramProtocol):
    """One UDP socket to the desk; ``faders`` holds the last value the desk reported for each channel (0..1)."""

    def __init__(self, host: str, port: int) -> None:
        self.desk = (host, port)
        self.faders: dict[int, float] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> "MiniController":
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, remote_addr=self.desk)
        self.send(_message("/xremote"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        message = OscMessage(data)
        parts = message.address.split("/")
        if len(parts) == 5 and parts[1] == "ch" and parts[3:] == ["mix", "fader"] and message.params:
            self.faders[int(parts[2])] = float(message.params[0])
            self._changed.set()

    def send(self, data: bytes) -> None:
        assert self._transport is not None, "use MiniController as 'async with'"
        self._transport.sendto(data)

    def ask_fader(self, channel: int) -> None:
        self.send(_message(fader_address(channel)))

    def set_fader(self, channel: int, value: float) -> None:
        self.send(_message(fader_address(channel), (value, "f")))
        self.faders[channel] = value

    async def fader(self, channel: int, timeout_s: float = 2.0) -> float:
        """The desk's value for a fader: asked for, and awaited."""
        self.faders.pop(channel, None)
        self.ask_fader(channel)
        async with asyncio.timeout(timeout_s):
            while channel not in self.faders:
                self._changed.clear()
                await self._changed.wait()
        return self.faders[channel]

    async def pushed(self, channel: int, value: float, timeout_s: float = 2.0) -> None:
        """Wait until the desk has pushed ``value`` (within a fader step) for a channel."""
        async with asyncio.timeout(timeout_s):
            while abs(self.faders.get(channel, -1.0) - value) > 1 / 1023:
                self._changed.clear()
                await self._changed.wait()

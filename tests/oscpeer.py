"""A stock OSC client for tests: python-osc builds and parses, asyncio carries it.

Deliberately not our codec, so a test proves that an independent peer
understands the simulator and the driver.
"""
from __future__ import annotations

import asyncio
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

Peer = tuple[str, int]


def build(address: str, *typed_args: tuple[str, Any]) -> bytes:
    builder = OscMessageBuilder(address=address)
    for tag, value in typed_args:
        builder.add_arg(value, tag)
    return builder.build().dgram


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue[tuple[OscMessage, Peer]]) -> None:
        self.queue = queue

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((OscMessage(data), (addr[0], addr[1])))


class OscPeer:
    """One UDP socket that sends to a desk and collects whatever comes back."""

    def __init__(self, desk: Peer) -> None:
        self.desk = desk
        self.inbox: asyncio.Queue[tuple[OscMessage, Peer]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    async def __aenter__(self) -> "OscPeer":
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: _Inbox(self.inbox), local_addr=("127.0.0.1", 0))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.transport is not None
        self.transport.close()

    @property
    def address(self) -> Peer:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[:2]

    def send(self, address: str, *typed_args: tuple[str, Any]) -> None:
        self.send_raw(build(address, *typed_args))

    def send_raw(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data, self.desk)

    async def receive(self, timeout_s: float = 1.0) -> OscMessage:
        message, _ = await asyncio.wait_for(self.inbox.get(), timeout_s)
        return message

    async def ask(self, address: str, timeout_s: float = 1.0) -> OscMessage:
        """Send a bare query and return the first reply for that address."""
        self.send(address)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            message = await self.receive(max(remaining, 0.001))
            if message.address == address:
                return message

    async def collect(self, duration_s: float) -> list[OscMessage]:
        """Everything that arrives within ``duration_s``."""
        got: list[OscMessage] = []
        deadline = asyncio.get_running_loop().time() + duration_s
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                got.append(await self.receive(remaining))
            except asyncio.TimeoutError:
                break
        return got

    def drain(self) -> None:
        while not self.inbox.empty():
            self.inbox.get_nowait()

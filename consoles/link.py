"""The desk driver's UDP socket, read by one reader only.

The event loop tells us when the socket is readable and we read it
ourselves (``loop.add_reader``); a control step that wants everything the
desk has said so far drains the very same path (:meth:`DeskSocket.drain`).
There is no transport reading beside us, so no datagram can be handed to
the driver twice or out of order.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import sys
from typing import Callable

from . import udpfilter
from .osc import MAX_DATAGRAM_BYTES

log = logging.getLogger(__name__)

Peer = tuple[str, int]

#: Most datagrams handled per readiness callback or drain (a flood must not stall a control step).
MAX_QUEUED_READ = 256
#: Linux reports ICMP "port unreachable" on an unconnected UDP socket only with
#: IP_RECVERR (IPV6_RECVERR); it tells "nothing listens at the desk's port" from
#: "the desk says nothing back". Python does not name these options.
_RECVERR = {socket.AF_INET: (socket.IPPROTO_IP, 11), socket.AF_INET6: (socket.IPPROTO_IPV6, 25)}


class DeskSocket:
    """A bound, non-blocking UDP socket; datagrams go to ``on_datagram``, socket errors to ``on_error``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 on_datagram: Callable[[bytes, Peer], None], on_error: Callable[[OSError], None]) -> None:
        self.sock = sock
        self._loop = loop
        self._on_datagram = on_datagram
        self._on_error = on_error
        loop.add_reader(sock.fileno(), self._readable)

    @classmethod
    def open(cls, loop: asyncio.AbstractEventLoop, bind: Peer, family: int, desk_ip: str, desk_port: int | None,
             on_datagram: Callable[[bytes, Peer], None], on_error: Callable[[OSError], None]) -> tuple["DeskSocket", bool]:
        """Bind, ask for ICMP reports, and keep strangers out in the kernel where it can; raises OSError.
        Also says whether the kernel filter is on."""
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if sys.platform.startswith("linux"):
                sock.setsockopt(*_RECVERR[family], 1)
            sock.bind(bind)
            filtered = udpfilter.accept_only_from(sock, desk_ip, desk_port)
            return cls(loop, sock, on_datagram, on_error), filtered
        except OSError:
            sock.close()
            raise

    @property
    def address(self) -> Peer:
        host, port = self.sock.getsockname()[:2]
        return (host, port)

    def send(self, data: bytes, peer: Peer) -> bool:
        """Send one datagram now; a refusal or a full buffer goes to ``on_error`` (the datagram is lost, as on
        the network: a lost write is found by the next poll and sent again)."""
        try:
            self.sock.sendto(data, peer)
        except OSError as exc:
            self._on_error(exc)
            return False
        return True

    def drain(self) -> int:
        """Handle every datagram already waiting, now; how many there were."""
        count = 0
        for _ in range(MAX_QUEUED_READ):
            if self.sock.fileno() < 0:
                break
            try:
                data, addr = self.sock.recvfrom(MAX_DATAGRAM_BYTES + 1)  # one byte more: an oversize one is seen as such
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # an ICMP report queued by IP_RECVERR surfaces as an error of the next read
                self._on_error(exc)
                continue
            count += 1
            self._on_datagram(data, (addr[0], addr[1]))
        return count

    def _readable(self) -> None:
        self.drain()

    def clear_errors(self) -> None:
        """Read the socket's error queue: queued ICMP reports hold receive-buffer memory until read."""
        flag = getattr(socket, "MSG_ERRQUEUE", 0)
        while flag and self.sock.fileno() >= 0:
            try:
                self.sock.recvmsg(1, 1024, flag)
            except OSError:
                break

    def dropped(self) -> int | None:
        """Datagrams the kernel dropped for this socket so far (its filter or a full buffer), where it tells."""
        return udpfilter.dropped(self.sock)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()

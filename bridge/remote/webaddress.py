"""Where the web surface listens, and which Host names it answers to.

A bare port listens on loopback. Off loopback a browser must name the bridge
by an address or name it was started with: a DNS rebinding attack brings a
name of its own (``rebind.attacker.example`` pointed at this machine), which
the browser then sends as Host and as Origin alike, so only a Host check
tells it from the page.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Iterable

from ailive.consoles.errors import AiliveError
from ailive.consoles.show import split_host_port

#: ``--web PORT`` without a host listens here: only this machine can reach it.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


class WebError(AiliveError):
    """The web surface cannot start as asked."""


@dataclass(frozen=True)
class WebAddress:
    host: str
    port: int  # 0: any free port

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        address = ip_of(self.host)
        return address is not None and address.is_loopback

    @property
    def wildcard(self) -> bool:
        return self.host in ("0.0.0.0", "::", "")


def ip_of(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address literal, an IPv4-mapped IPv6 one as IPv4; None for a name."""
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def own_names() -> frozenset[str]:
    """This machine's host name, as a browser on the show network may know it (plain, and mDNS ``.local``)."""
    name = socket.gethostname().lower().rstrip(".")
    short = name.partition(".")[0]
    return frozenset(n for n in (name, short, f"{short}.local") if n)


def parse_web_address(text: str) -> WebAddress:
    """``PORT``, ``HOST:PORT`` or ``HOST`` (``[v6]:PORT`` for IPv6); a bare port listens on loopback, 0 on a free port."""
    text = text.strip()
    if text.isdigit():
        text = f"{DEFAULT_HOST}:{text}"
    base, colon, last = text.rpartition(":")
    if colon and last == "0" and (base.endswith("]") or ":" not in base):
        return WebAddress(split_host_port(base, 0, "web address")[0], 0)
    return WebAddress(*split_host_port(text, DEFAULT_PORT, "web address"))


def listen(address: WebAddress) -> socket.socket:
    """Bind the listening socket now, so a port in use is one clear error before anything starts."""
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise WebError(f"web surface: cannot listen on {address}: {exc.strerror}") from None
    family, kind, proto, _, where = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart right after a stop binds at once
        sock.bind(where)
        sock.listen(64)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise WebError(f"web surface: cannot listen on {address}: {exc.strerror or exc}") from None
    return sock


def url_of(sock: socket.socket, fragment: str = "") -> str:
    """The page's URL; an any-address bind says so, since the tablet needs this machine's own address."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        return f"http://<this machine's address>:{port}/{fragment} (listening on every interface)"
    return (f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/") + fragment


@dataclass(frozen=True)
class HostCheck:
    """Which Host headers name this bridge: on loopback, a loopback name; else a name it was started with
    (this machine's, ``--web-host``, the bound address) or the very address the request reached."""

    address: WebAddress
    names: frozenset[str]

    @classmethod
    def of(cls, address: WebAddress, hosts: Iterable[str] = ()) -> "HostCheck":
        names = frozenset(_normal(n) for n in hosts) | own_names()
        return cls(address, names if address.wildcard else names | {_normal(address.host)})

    def allows(self, host_header: str, reached: str | None) -> bool:
        """Whether ``host_header`` names this bridge, for a request that reached local address ``reached``."""
        host = _normal(host_name(host_header))
        if self.address.loopback:
            return host in LOOPBACK_NAMES or host == _normal(self.address.host)
        if host in self.names:
            return True
        local = ip_of(reached) if reached else None
        if local is None:
            return False
        return (host == "localhost" and local.is_loopback) or ip_of(host) == local


def _normal(name: str) -> str:
    return name.strip().lower().rstrip(".")


def host_name(host_header: str) -> str:
    """``HOST[:PORT]`` or ``[v6][:PORT]`` from a Host header, without the port."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header

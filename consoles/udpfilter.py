"""Keep a stranger's datagrams out of the desk socket, in the kernel, before they cost anything.

A flood from anyone who can reach the bridge's port must not fill the
socket's receive buffer: the desk's own answers would be dropped behind it
and the desk declared lost (every fader held). A socket filter (Linux
classic BPF) accepts only the desk's IPv4 source address and, for a desk
that answers the sender, its port; everything else is dropped before it is
queued and never reaches Python. The kernel still counts what it dropped
(``/proc/net/udp``), so the refusals are reported, not hidden. Where no
filter can be attached (IPv6, another OS) the driver's own source check
refuses strangers, as before.
"""
from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import sys

#: Linux: setsockopt(SOL_SOCKET, SO_ATTACH_FILTER, struct sock_fprog).
SO_ATTACH_FILTER = 26
#: Offset that makes a socket filter's load address the network (IP) header; offset 0 is the UDP header.
_SKF_NET_OFF = -0x100000
_IPV4_SOURCE_OFFSET = 12
_LD_W_ABS, _LD_H_ABS, _JEQ_K, _RET_K = 0x20, 0x28, 0x15, 0x06
_ACCEPT_BYTES = 0x40000
_PROC_TABLES = {socket.AF_INET: "/proc/net/udp", socket.AF_INET6: "/proc/net/udp6"}


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def source_filter(host: str, port: int | None) -> list[tuple[int, int, int, int]]:
    """The filter program as (code, jt, jf, k): accept datagrams from ``host`` (and ``port``), drop the rest."""
    program = [
        (_LD_W_ABS, 0, 0, (_SKF_NET_OFF + _IPV4_SOURCE_OFFSET) & 0xFFFFFFFF),  # A = IPv4 source address
        (_JEQ_K, 0, 3 if port is not None else 1, int(ipaddress.IPv4Address(host))),
    ]
    if port is not None:
        program += [(_LD_H_ABS, 0, 0, 0), (_JEQ_K, 0, 1, port)]  # A = UDP source port
    return program + [(_RET_K, 0, 0, _ACCEPT_BYTES), (_RET_K, 0, 0, 0)]


def accept_only_from(sock: socket.socket, host: str, port: int | None = None) -> bool:
    """Attach a filter that accepts only datagrams from ``host`` (and ``port``); whether it could (IPv4, Linux)."""
    if not sys.platform.startswith("linux") or sock.family != socket.AF_INET:
        return False
    program = source_filter(host, port)
    filters = (_SockFilter * len(program))(*(_SockFilter(*instruction) for instruction in program))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(_SockFprog(len(program), filters)))
    except OSError:
        return False
    return True


def dropped(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped for this socket: the filter's refusals and any receive-buffer overflow.

    None where the count cannot be read (not Linux, no /proc).
    """
    table = _PROC_TABLES.get(sock.family)
    if table is None:
        return None
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
        with open(table, encoding="ascii") as rows:
            for row in rows:
                fields = row.split()
                if len(fields) > 9 and fields[9] == inode:
                    return int(fields[-1])
    except (OSError, ValueError):
        return None
    return None

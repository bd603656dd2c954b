"""A real Mosquitto broker per test: generated config on a free loopback port, started and stopped by PID.

In CI (``CI`` set) a missing ``mosquitto`` fails the test; elsewhere it skips.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

MOSQUITTO = "/usr/sbin/mosquitto"


def _need(program: str) -> str:
    found = program if os.access(program, os.X_OK) else shutil.which(program)
    if not found:
        message = f"{program} is not installed (Debian package mosquitto)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1, made with openssl."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, directory: Path) -> "TlsFiles":
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("openssl is not installed")
        directory.mkdir(parents=True, exist_ok=True)
        ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
        ext = directory / "server.ext"
        ext.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")

        def sh(*args: str) -> None:
            subprocess.run([openssl, *args], check=True, capture_output=True, timeout=30)

        sh("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
           "-subj", "/CN=ailive test CA")
        sh("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
        sh("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
           "-days", "2", "-extfile", str(ext))
        return cls(ca, cert, key)


class Mosquitto:
    """One broker process; ``kill`` and ``start`` again keep the port (a broker that dies mid-show)."""

    def __init__(self, directory: Path, *, passwords: dict[str, str] | None = None, tls: TlsFiles | None = None) -> None:
        self.directory = directory
        self.port = free_port()
        self.passwords = passwords
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        self.config = directory / "mosquitto.conf"
        self.log = directory / "mosquitto.log"

    def _write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr", "log_type error",
                 "log_type warning", "log_type notice", "log_type information"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto', which cannot read the test's files
        if self.passwords is None:
            lines.append("allow_anonymous true")
        else:
            password_file = self.directory / "passwords"
            password_file.write_text("")
            tool = _need("mosquitto_passwd")
            for user, password in self.passwords.items():
                subprocess.run([tool, "-b", str(password_file), user, password], check=True, capture_output=True, timeout=10)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        if self.tls is not None:
            lines += [f"cafile {self.tls.ca}", f"certfile {self.tls.cert}", f"keyfile {self.tls.key}"]
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, timeout_s: float = 5.0) -> "Mosquitto":
        program = _need(MOSQUITTO)
        self._write_config()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([program, "-c", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout_s} s: "
                                       f"{self.log.read_text()[-2000:]}") from None
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a goodbye."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, sig)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Start brokers with ``mosquitto_factory(passwords=..., tls=...)``; every one is stopped by PID afterwards."""
    brokers: list[Mosquitto] = []

    def start(**kwargs: object) -> Mosquitto:
        broker = Mosquitto(tmp_path / f"mosquitto-{len(brokers)}", **kwargs)  # type: ignore[arg-type]
        brokers.append(broker)
        return broker.start()

    yield start
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    """An anonymous broker on a free loopback port."""
    return mosquitto_factory()

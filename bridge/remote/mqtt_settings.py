"""Telemetry and remote control settings (a show file's ``[mqtt]``): broker, credentials, TLS files, topics."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ailive.consoles.tomlschema import TableReader


@dataclass(frozen=True)
class MqttSettings:
    """Telemetry and remote control (``[mqtt]``); secrets stay out of ``repr`` so they never reach a log."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883  # 8883 by default with TLS
    username: str = ""
    password: str = field(default="", repr=False)
    tls: bool = False
    ca_file: str = ""  # TLS: the CA that signed the broker's certificate (default: the system's CAs)
    cert_file: str = ""  # TLS: a client certificate, for brokers that ask for one
    key_file: str = ""  # TLS: the client certificate's key (default: inside cert_file)
    token: str = field(default="", repr=False)  # commands must carry it when set
    topic_prefix: str = "ailive"  # topics are <topic_prefix>/<show name>/...


def parse_mqtt(reader: TableReader | None) -> MqttSettings:
    if reader is None:
        return MqttSettings()
    d = MqttSettings()
    show_dir = Path(reader.path).parent

    def pem_file(name: str) -> str:
        """A PEM file, relative to the show file's folder, that exists now (not first at the venue)."""
        text = reader.get(name, str, "", expected="the path of an existing PEM file (relative to the show file)",
                          check=lambda v: (show_dir / v).is_file())
        return str(show_dir / text) if text else ""

    def secret(name: str, expected: str) -> str:
        """A password or token: a mistake is reported without echoing the value."""
        try:
            return reader.get(name, str, "", expected=expected, check=lambda v: bool(v.strip()))
        except reader.error:
            raise reader.fail(name, f"{expected}; the value is not shown") from None

    ca_file, cert_file, key_file = pem_file("ca_file"), pem_file("cert_file"), pem_file("key_file")
    if key_file and not cert_file:
        raise reader.fail("cert_file", "the client certificate that goes with key_file (the key is required when key_file is set)")
    tls = reader.get("tls", bool, bool(ca_file or cert_file))
    if not tls and (ca_file or cert_file):
        raise reader.fail("tls", "true when ca_file or cert_file is set", False)
    username = reader.get("username", str, "")
    password = secret("password", "a non-empty password (leave the key out for none)")
    if password and not username:
        raise reader.fail("username", "a user name to go with password (the key is required when password is set)")
    mqtt = MqttSettings(
        enabled=reader.get("enabled", bool, True),
        host=reader.get("host", str, d.host, expected="the broker's IP address or host name", check=lambda v: bool(v.strip())),
        port=reader.integer("port", 8883 if tls else d.port, low=1, high=65535),
        username=username,
        password=password,
        tls=tls,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        token=secret("token", "a non-empty command token (leave the key out for none)"),
        topic_prefix=reader.get("topic_prefix", str, d.topic_prefix,
                                expected="MQTT topic levels such as 'ailive' or 'venue/foh' (no +, #, $, empty levels)",
                                check=lambda v: bool(v) and not v.startswith("$") and "+" not in v and "#" not in v
                                and all(level for level in v.split("/"))),
    )
    reader.finish()
    return mqtt

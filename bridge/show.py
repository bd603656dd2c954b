"""A show file as the bridge reads it: the desk's part (``ailive.consoles.show``) and the bridge's own tables.

``[policy]`` belongs to the safety policy (``policy_settings``), ``[mqtt]``
to remote control (``remote.mqtt_settings``); each is parsed by its owner,
and a key nobody reads is refused with the file and the key named.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ailive.consoles.show import ShowDesk, read_show_desk, read_show_file

from .policy_settings import PolicySettings, parse_policy
from .remote.mqtt_settings import MqttSettings, parse_mqtt


@dataclass(frozen=True)
class Show(ShowDesk):
    """One gig: the desk, the channel map, the policy's numbers and the MQTT link."""

    policy: PolicySettings = field(default_factory=PolicySettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)


def load_show(path: str | Path, profile_dirs: list[Path] | None = None) -> Show:
    """Read and validate a show file; every problem is a ``ShowFileError`` naming the key."""
    top = read_show_file(path)
    desk = read_show_desk(top, profile_dirs)
    show = Show(**vars(desk),
                policy=parse_policy(top.table("policy")), mqtt=parse_mqtt(top.table("mqtt")))
    top.finish()
    return show

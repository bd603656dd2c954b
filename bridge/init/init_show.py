"""``ailive init``: ask a desk what it is and what its channels are called, and draft a show file from that.

The desk is only read: identification, then the sweep every connection does
(fader, mute and name of each channel). Without ``--profile`` every known
dialect asks at once; the one the desk answers as its own wins. A desk that
says nothing, or answers as none of them, leaves no file behind.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from pathlib import Path

from ailive.consoles.driver import DeskIdentity, OscDeskDriver
from ailive.consoles.errors import AiliveError, DeskError, DeskIdentityError, DeskUnreachableError
from ailive.consoles.profile import Profile

from ..audio import AudioSourceError, jack_output_ports
from .showplan import DeskChannel, PlannedChannel, in_order, plan_channels
from .showwriter import ShowDraft, ShowWriteError, render_show, write_show

#: Tries of each query before a desk counts as silent.
RETRIES = 3


@dataclass(frozen=True)
class DeskSurvey:
    """What one desk said about itself and its channels."""

    profile: Profile
    host: str
    port: int
    identity: DeskIdentity
    channels: list[DeskChannel]
    also: tuple[str, ...] = ()  # other profiles that would speak to this desk too


@dataclass(frozen=True)
class InitOptions:
    path: Path
    host: str
    port: int | None  # None: each profile's own port
    profiles: list[Profile]  # one: the desk is this; several: find out which
    force: bool = False
    jack_server: str | None = None
    timeout_s: float = 0.5
    profile_dirs: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class InitResult:
    path: Path
    survey: DeskSurvey
    channels: list[PlannedChannel]
    jack_ports: list[str] | None  # None: no JACK server ran


def _printable(name: str) -> str:
    """A desk's channel name with control characters dropped (a show file is text a person reads)."""
    return "".join(c for c in name if c.isprintable()).strip()


async def survey_with(profile: Profile, host: str, port: int | None, timeout_s: float) -> DeskSurvey:
    """Identify the desk in ``profile``'s dialect and read every channel's name."""
    local_port = 0 if profile.replies_to_sender else profile.receive_port or 0
    driver = OscDeskDriver(profile, host, profile.port if port is None else port, reply_timeout_s=timeout_s,
                           retries=RETRIES, local_port=local_port)
    identity = await driver.connect()
    try:
        channels = [DeskChannel(ch, _printable(view.name)) for ch, view in sorted(driver.view.items())]
    finally:
        await driver.close()
    return DeskSurvey(profile, host, driver.port, identity, channels)


def _preference(survey: DeskSurvey) -> int:
    """Among dialects that all identify the desk: the one whose own model it is, then one named like it."""
    model = survey.identity.model.lower()
    return 2 * (survey.profile.sim.model.lower() == model) + model.startswith(survey.profile.name.lower())


async def survey_desk(host: str, port: int | None, profiles: list[Profile], timeout_s: float) -> DeskSurvey:
    """The desk at ``host`` in the one dialect given, or in whichever of ``profiles`` it answers to as its own
    (several: the one whose model it reports, see :func:`_preference`).

    Dialects whose usual port is ``port`` ask first, the others only when none
    of them identified the desk (a desk that feeds back one device at a time
    is then not claimed by a stranger first).
    """
    if len(profiles) == 1:
        return await survey_with(profiles[0], host, port, timeout_s)
    usual = [p for p in profiles if port is not None and p.port == port]
    errors: list[DeskError] = []
    for stage in (usual, [p for p in profiles if p not in usual]):
        results = await asyncio.gather(*(survey_with(p, host, port, timeout_s) for p in stage), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, DeskError):
                raise result
        found = [r for r in results if isinstance(r, DeskSurvey)]
        errors += [r for r in results if isinstance(r, DeskError)]
        if found:
            found.sort(key=_preference, reverse=True)
            return replace(found[0], also=tuple(r.profile.name for r in found[1:]))
    raise _nobody_answered(host, port, profiles, errors, timeout_s)


def _nobody_answered(host: str, port: int | None, profiles: list[Profile], errors: list[DeskError],
                     timeout_s: float) -> DeskError:
    names = ", ".join(p.name for p in profiles)
    where = f"{host}:{port}" if port is not None else f"{host} (each desk's own port)"
    foreign = [e for e in errors if isinstance(e, DeskIdentityError)]
    if foreign:
        first = str(foreign[0]).removesuffix(f" ({foreign[0].host}:{foreign[0].port})")
        return DeskIdentityError(f"something answers at {where}, but as none of the known desks ({names}): {first}; "
                                 "for a desk of another family write a profile (docs/profiles.md)",
                                 foreign[0].host, foreign[0].port)
    return DeskUnreachableError(f"no desk answered at {where} in any known dialect ({names}; {RETRIES} x {timeout_s:g} s each): "
                                "check the desk's IP address, its OSC port and the network, or name it with --profile",
                                host, port or 0)


def audio_ports(server_name: str | None) -> tuple[list[str] | None, str]:
    """The JACK server's audio output ports (the desk's channels among them), or None, with a line saying so."""
    try:
        ports = jack_output_ports(server_name, client_name="ailive-init")
    except AudioSourceError as exc:
        return None, f"JACK: {exc}; so the ports are guesses (desk channel N on system:capture_N): check them."
    server = f"server {server_name!r}" if server_name else "the default server"
    return ports, (f"JACK: {len(in_order(ports))} capture ports on {server}; each channel takes the port whose "
                   "name carries its own, else the next capture port in order.")


def _desk_line(survey: DeskSurvey) -> str:
    who = survey.identity
    named = f" named {who.name!r}" if who.name else ""
    firmware = f", firmware {who.firmware}" if who.firmware else ""
    return f"model {who.model}{named}{firmware}"


async def init_show(options: InitOptions) -> InitResult:
    """Survey the desk, map the JACK ports, write the show file; nothing is written when any step fails."""
    path = options.path
    if path.is_dir():
        raise ShowWriteError(f"{path} is a folder; give the show file's name")
    if path.exists() and not options.force:
        raise ShowWriteError(f"{path} exists; --force replaces it")
    survey = await survey_desk(options.host, options.port, options.profiles, options.timeout_s)
    ports, jack_line = audio_ports(options.jack_server)
    channels = plan_channels(survey.channels, ports)
    if not any(c.port for c in channels):
        raise AiliveError(f"the JACK server offers no capture ports to map the desk's channels to; "
                          f"nothing written ({jack_line})")
    draft = ShowDraft(path, survey.profile, survey.host, survey.port, _desk_line(survey), jack_line, channels,
                      tuple(options.profile_dirs) if survey.profile.source_kind == "dir" else (), tuple(ports or ()))
    write_show(path, render_show(draft), force=options.force, profile_dirs=options.profile_dirs)
    return InitResult(path, survey, channels, ports)

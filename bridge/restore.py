"""Put the faders back where the engineer had them when the bridge last armed (``ailive restore``).

A restore writes to a desk after a crash, when nobody is watching the
bridge, so it trusts the journal only as far as it can check it: the arm
record must be this show's (name, desk type, desk address, channel map),
every level must be one the desk can hold, and a damaged arm record is an
error. Anything it cannot trust is one error line, and then nothing is
written. It puts back every fader the bridge rode (``auto``), even one whose
last move a crash kept out of the journal, and any other fader it journaled
a move of after the arm (a channel handed to it during the show); a manual
or excluded fader it never wrote is the engineer's and stays where it is
(``kill`` too leaves the faders the bridge never wrote). Every level it
writes and reads back is journaled (``restore``), so the journal tells the
whole story of the desk; a journal that cannot be written is said on stderr
and does not stop the restore.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from ailive.consoles.driver import OscDeskDriver
from ailive.consoles.errors import AiliveError
from ailive.consoles.faderlaw import held_db

from .journal import Journal, JournalError, Snapshot, encode_db, journal_path, last_snapshot
from .show import Show


log = logging.getLogger(__name__)


class RestoreError(AiliveError):
    """The journal's snapshot is not one this restore may write."""


@dataclass(frozen=True)
class RestorePlan:
    snapshot: Snapshot
    faders_db: dict[int, float]  # channel -> the level to write
    skipped: list[int]  # manual and excluded channels the bridge never wrote, left where the engineer has them


@dataclass
class RestoreResult:
    snapshot: Snapshot
    restored: dict[int, float]  # channel -> level the desk holds afterwards
    failed: list[int]
    skipped: list[int] = field(default_factory=list)


def plan_restore(show: Show, journal_dir: Path) -> RestorePlan:
    """The snapshot to write, checked against the show file; a :class:`RestoreError` names what does not match."""
    snapshot = last_snapshot(journal_dir, show.name)
    where = f"the newest arm record in {journal_path(journal_dir, show.name)}"
    if snapshot.show != show.name:
        raise RestoreError(f"{where} is of show {snapshot.show!r}, not {show.name!r}: nothing is restored")
    if snapshot.profile != show.profile.name:
        raise RestoreError(f"{where} was taken on a {snapshot.profile} desk, the show is for {show.profile.name}: "
                           "nothing is restored")
    if snapshot.desk != str(show.desk):
        raise RestoreError(f"{where} was taken on the desk at {snapshot.desk}, not {show.desk}: nothing is restored "
                           f"(--desk {snapshot.desk} restores onto that desk)")
    _check_channel_map(show, snapshot, where)
    law = show.profile.law
    for ch, db in sorted(snapshot.faders_db.items()):
        if db != -math.inf and not law.min_db <= db <= law.max_db:
            raise RestoreError(f"{where} holds {db:g} dB for channel {ch}, outside the {show.profile.name}'s fader range "
                               f"({law.min_db:g} to {law.max_db:+g} dB, or off): nothing is restored")
    assert snapshot.channels is not None
    not_ridden = {c.desk_channel for c in show.channels if c.mode != "auto"}
    not_ridden |= {ch for ch, mapped in snapshot.channels.items() if mapped.mode != "auto"}
    skipped = sorted(not_ridden - snapshot.moved_after)
    return RestorePlan(snapshot, {ch: db for ch, db in snapshot.faders_db.items() if ch not in skipped}, skipped)


def _check_channel_map(show: Show, snapshot: Snapshot, where: str) -> None:
    """The arm record must map the show's desk channels to the show's JACK ports, and hold a level for each."""
    if snapshot.channels is None:
        raise RestoreError(f"{where} names no channel map, so it cannot be told apart from another show's: "
                           "nothing is restored")
    ours = {c.desk_channel: c.port for c in show.channels}
    theirs = {ch: mapped.port for ch, mapped in snapshot.channels.items()}
    if set(theirs) != set(ours):
        raise RestoreError(f"{where} maps desk channels {_channels(theirs)}{_file(snapshot)}, this show maps "
                           f"{_channels(ours)}: another show with the same name? Give each show its own --journal "
                           "folder; nothing is restored")
    for ch in sorted(ours):
        if theirs[ch] != ours[ch]:
            raise RestoreError(f"{where} has desk channel {ch} fed by {theirs[ch]!r}{_file(snapshot)}, this show by "
                               f"{ours[ch]!r}: nothing is restored")
    if set(snapshot.faders_db) != set(ours):
        raise RestoreError(f"{where} is damaged (levels for channels {_channels(snapshot.faders_db)}, its channel map "
                           f"names {_channels(theirs)}): nothing is restored")


def _channels(channels: dict[int, object]) -> str:
    """Desk channels as runs: ``1-8, 12``."""
    runs: list[list[int]] = []
    for ch in sorted(channels):
        if runs and ch == runs[-1][-1] + 1:
            runs[-1].append(ch)
        else:
            runs.append([ch])
    return ", ".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs)


def _file(snapshot: Snapshot) -> str:
    return f" (show file {snapshot.file})" if snapshot.file else ""


async def restore_show(show: Show, journal_dir: Path, reply_timeout_s: float = 0.5) -> RestoreResult:
    """Put the last arm snapshot back on the desk and read every fader back to prove it."""
    plan = plan_restore(show, journal_dir)
    channels = sorted(plan.faders_db)
    if not channels:  # every mapped channel is excluded: nothing of the bridge's to undo
        return RestoreResult(plan.snapshot, {}, [], plan.skipped)
    law = show.profile.law
    async with OscDeskDriver.for_show(show, channels=channels, reply_timeout_s=reply_timeout_s) as driver:
        for ch in channels:
            driver.set_fader_db(ch, plan.faders_db[ch])
        await driver.drain()  # every level is on its way before it is read back
        restored = {ch: await driver.read_fader_db(ch) for ch in channels}
    failed = [ch for ch in channels if restored[ch] != held_db(law, plan.faders_db[ch])]  # -inf == -inf for off
    _journal_restore(show, journal_dir, plan, restored, failed)
    return RestoreResult(plan.snapshot, restored, failed, plan.skipped)


def _journal_restore(show: Show, journal_dir: Path, plan: RestorePlan, restored: dict[int, float], failed: list[int]) -> None:
    """One ``restore`` record per written fader: the snapshot level and what the desk read back."""
    try:
        with Journal.for_show(journal_dir, show) as journal:
            for ch in sorted(restored):
                journal.write("restore", ch=ch, db=encode_db(plan.faders_db[ch]), read_back_db=encode_db(restored[ch]),
                              ok=ch not in failed, origin="ailive restore")
    except JournalError as exc:
        log.warning("the restore is done but not journaled: %s", exc)

"""The journal: an append-only JSONL record of every move and event, and the arm-time snapshot.

Every record reaches the kernel as it is written, so a bridge killed with
SIGKILL loses none of its moves; the file is fsynced once a second, and the
arm snapshot at once, before the first move, so ``ailive restore`` can put
the desk back after any crash. The snapshot names the show file, the desk and
the channel map, so a restore can tell whether it belongs to the show it is
asked to restore. A journal that cannot be written (a full disk) is an error
at arm time: the bridge refuses to arm when it cannot promise a restore, and
disarms when it can no longer explain its moves. Records that did not reach
the disk stay buffered and go out with the next write that succeeds.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import reprlib
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, TextIO

from ailive.consoles.errors import AiliveError

from .jsonsafe import from_json, to_json

if TYPE_CHECKING:
    from .show import Show

log = logging.getLogger(__name__)

#: Longest the records may wait in the kernel's cache before they are synced to the disk.
FLUSH_PERIOD_S = 1.0


class JournalError(AiliveError):
    """The journal cannot be written or read."""


#: A dB value as the journal writes and reads it (``jsonsafe``'s one convention).
encode_db = to_json
decode_db = from_json


@dataclass(frozen=True)
class MappedChannel:
    """One [[channel]] of the show that armed, as the arm record names it."""

    port: str
    mode: str


@dataclass(frozen=True)
class Snapshot:
    """The faders as the engineer had them when the bridge armed, and which show, desk and channel map armed."""

    time_s: float
    show: str
    profile: str
    desk: str
    faders_db: dict[int, float]  # desk channel -> dB
    file: str = ""  # the show file that armed
    channels: dict[int, MappedChannel] | None = None  # None: an arm record without a channel map
    moved_after: frozenset[int] = field(default_factory=frozenset)  # channels the bridge moved after this arm


def journal_path(directory: Path, show_name: str) -> Path:
    return directory / f"{show_name}.jsonl"


def show_identity(show: "Show") -> dict[str, Any]:
    """What the arm record says about the show beyond its name: the file and the channel map."""
    return {"file": str(Path(show.path).resolve()),
            "channels": {str(c.desk_channel): {"port": c.port, "mode": c.mode} for c in show.channels}}


class Journal:
    """Appends records for one show to ``<directory>/<show>.jsonl``."""

    def __init__(self, directory: Path, show_name: str, wall_clock: Callable[[], float] = time.time,
                 identity: Mapping[str, Any] | None = None) -> None:
        self.path = journal_path(directory, show_name)
        self.show_name = show_name
        self._wall_clock = wall_clock
        self._identity = dict(identity or {})
        self._file: TextIO | None = None
        self._last_sync_s = -math.inf
        self._syncer: ThreadPoolExecutor | None = None  # the periodic fsync, off the control loop
        self._pending_sync: Future[None] | None = None
        self.records = 0

    @classmethod
    def for_show(cls, directory: Path, show: "Show", wall_clock: Callable[[], float] = time.time) -> "Journal":
        """The journal of ``show``, whose arm records name its file and channel map."""
        return cls(directory, show.name, wall_clock, show_identity(show))

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise self._unwritable(exc) from None
        except ValueError:  # a NUL in the show's name (TOML lets a \u0000 escape through)
            raise JournalError(f"cannot write a journal for show {self.show_name!r}: the name cannot be a file name; "
                               "set [show] name to plain text") from None

    def close(self) -> None:
        """Sync and close; a journal that cannot be written is a :class:`JournalError`, the file is closed anyway."""
        if self._file is None:
            return
        file, self._file = self._file, None
        self._stop_syncer()
        try:
            file.flush()
            os.fsync(file.fileno())
        except (OSError, ValueError) as exc:
            error = self._unwritable(exc)
        else:
            error = None
        try:
            file.close()  # flushes again: a full disk refuses it again, and the descriptor is closed all the same
        except OSError:
            pass
        if error is not None:
            raise error

    def __enter__(self) -> "Journal":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_snapshot(self, faders_db: dict[int, float], profile: str, desk: str) -> None:
        """Record the arm-time snapshot and make it durable before anything moves."""
        self.write("arm", show=self.show_name, profile=profile, desk=desk, **self._identity,
                   faders={str(ch): encode_db(db) for ch, db in sorted(faders_db.items())})
        self._sync()

    def write(self, kind: str, **fields: Any) -> None:
        """Append one record and hand it to the kernel at once: a killed process loses none."""
        if self._file is None:
            raise JournalError(f"the journal {self.path} is not open")
        record = {"t": round(self._wall_clock(), 6), "kind": kind, **fields}
        try:
            self._file.write(json.dumps(record, allow_nan=False) + "\n")
            self.records += 1
            self._file.flush()
        except (OSError, ValueError) as exc:
            raise self._unwritable(exc) from None

    def _unwritable(self, exc: BaseException) -> JournalError:
        """The one error for a journal the disk refuses, naming the file and the system's reason."""
        return JournalError(f"cannot write the journal {self.path}: {getattr(exc, 'strerror', None) or exc}")

    def flush_if_due(self, now_s: float) -> None:
        """Sync to the disk when the last sync is more than :data:`FLUSH_PERIOD_S` old (a power cut loses at most that).

        The fsync runs on a thread of its own: it takes milliseconds, a
        twentieth of the steps would pay them on the control loop. A sync
        that failed there is this call's error, one period later at most.
        """
        self._take_sync_result()
        if self._file is None or now_s - self._last_sync_s < FLUSH_PERIOD_S or self._pending_sync is not None:
            return
        self._last_sync_s = now_s
        if self._syncer is None:
            self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ailive-journal-sync")
        self._pending_sync = self._syncer.submit(os.fsync, self._file.fileno())

    def _take_sync_result(self) -> None:
        pending = self._pending_sync
        if pending is None or not pending.done():
            return
        self._pending_sync = None
        exc = pending.exception()
        if exc is not None:
            raise self._unwritable(exc)

    def _stop_syncer(self) -> None:
        """Wait for a sync still running (its descriptor is about to close), then end the thread."""
        syncer, self._syncer = self._syncer, None
        if syncer is not None:
            syncer.shutdown(wait=True)
        self._pending_sync = None

    def _sync(self) -> None:
        if self._file is None:
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise self._unwritable(exc) from None


#: How an arm record starts to read, enough to know a damaged line was one.
_ARM_MARK = b'"kind": "arm"'
_CHANNEL_KEY = re.compile(r"[1-9][0-9]{0,3}")


@dataclass(frozen=True)
class _Line:
    number: int
    raw: bytes
    record: dict[str, Any] | None  # None: the line is damaged (cut short, not UTF-8, not a JSON object, NaN, nested too deep)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) and "kind" in record else None


def _read_lines(path: Path) -> list[_Line]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise JournalError(f"no journal at {path}: was the show ever armed with this journal directory?") from None
    except OSError as exc:
        raise JournalError(f"cannot read the journal {path}: {exc.strerror}") from None
    return [_Line(number, raw, _parse(raw)) for number, raw in enumerate(data.split(b"\n"), 1) if raw.strip()]


@dataclass(frozen=True)
class JournalRead:
    """A journal as read: its intact records, and the numbers of the damaged lines skipped."""

    records: list[dict[str, Any]]
    dropped: list[int]


def read_journal(path: Path) -> JournalRead:
    """Every intact record, and which lines were damaged (cut short by a crash, a flipped byte) and skipped."""
    lines = _read_lines(path)
    return JournalRead([line.record for line in lines if line.record is not None],
                       [line.number for line in lines if line.record is None])


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every intact record; damaged lines are skipped, not fatal, and their count is logged once."""
    read = read_journal(path)
    if read.dropped:
        log.warning("%s: %d damaged line(s) skipped (first: line %d)", path, len(read.dropped), read.dropped[0])
    return read.records


def last_snapshot(directory: Path, show_name: str) -> Snapshot:
    """The most recent arm snapshot of a show, read strictly: a damaged one is an error, never half a restore.

    A damaged line after it (a torn last line, a move with a flipped byte) is
    skipped; a damaged line that was an arm record is an error, because the
    faders it held are unknown.
    """
    path = journal_path(directory, show_name)
    lines = _read_lines(path)
    arms = [i for i, line in enumerate(lines) if line.record is not None and line.record.get("kind") == "arm"]
    start = arms[-1] + 1 if arms else 0
    for line in lines[start:]:
        if line.record is None and _ARM_MARK in line.raw:
            raise JournalError(f"the newest arm record in {path} (line {line.number}) is damaged: the faders it held "
                               "are unknown, so nothing is restored")
    if not arms:
        raise JournalError(f"the journal {path} holds no arm snapshot: the bridge never armed, so there is nothing to restore")
    arm = lines[arms[-1]]
    assert arm.record is not None
    snapshot = _snapshot(arm.record, f"the arm record on line {arm.number} of {path}")
    moved = {line.record.get("ch") for line in lines[start:] if line.record is not None and line.record.get("kind") == "move"}
    return replace(snapshot, moved_after=frozenset(ch for ch in moved if isinstance(ch, int)))


def _snapshot(record: dict[str, Any], where: str) -> Snapshot:
    """An arm record's fields, every one checked for type and shape."""
    def damaged(why: str) -> JournalError:
        return JournalError(f"{where} is damaged ({why}): nothing is restored")

    def text(name: str, default: str | None = None) -> str:
        value = record.get(name, default)
        if not isinstance(value, str):
            raise damaged(f"{name} is {reprlib.repr(value)}, not text")
        return value

    t = record.get("t")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        raise damaged(f"t is {reprlib.repr(t)}, not a time")
    faders = record.get("faders")
    if not isinstance(faders, dict) or not faders:
        raise damaged(f"faders is {reprlib.repr(faders)}, not a table of fader levels")
    levels = {_channel(key, damaged): _level(key, value, damaged) for key, value in faders.items()}
    return Snapshot(float(t), text("show"), text("profile"), text("desk"), levels, text("file", ""),
                    _channel_map(record.get("channels"), damaged))


def _channel(key: str, damaged: Callable[[str], JournalError]) -> int:
    if not _CHANNEL_KEY.fullmatch(key):
        raise damaged(f"{reprlib.repr(key)} is not a desk channel")
    return int(key)


def _level(key: str, value: Any, damaged: Callable[[str], JournalError]) -> float:
    """A fader level as the snapshot writes it: a finite number, or ``"-inf"`` for a fader that is off."""
    if value == "-inf":
        return -math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise damaged(f"the level of channel {key} is {reprlib.repr(value)}, not a fader level")
    return float(value)


def _channel_map(value: Any, damaged: Callable[[str], JournalError]) -> dict[int, MappedChannel] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise damaged(f"channels is {reprlib.repr(value)}, not a channel map")
    channels = {}
    for key, entry in value.items():
        port = entry.get("port") if isinstance(entry, dict) else None
        mode = entry.get("mode") if isinstance(entry, dict) else None
        if not isinstance(port, str) or not isinstance(mode, str):
            raise damaged(f"the channel map's entry for {reprlib.repr(key)} is {reprlib.repr(entry)}")
        channels[_channel(key, damaged)] = MappedChannel(port, mode)
    return channels

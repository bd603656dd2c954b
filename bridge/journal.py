"""The journal: an append-only JSONL record of every move and event, and the arm-time snapshot.

The snapshot is written and fsynced before the first move, so ``ailive
restore`` can put the desk back even after the bridge was killed with
SIGKILL. Everything else is flushed at least once a second. A journal that
cannot be written (a full disk) is an error at arm time: the bridge refuses
to arm when it cannot promise a restore, and disarms when it can no longer
explain its moves. Records that did not reach the disk stay buffered and go
out with the next flush that succeeds.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

from ailive.consoles.errors import AiliveError

#: Longest a record may sit in the buffer before it reaches the disk.
FLUSH_PERIOD_S = 1.0


class JournalError(AiliveError):
    """The journal cannot be written or read."""


def encode_db(db: float) -> float | str:
    """JSON has no infinities: a fader that is off is written as ``"-inf"``."""
    if math.isnan(db):
        return "nan"
    return db if math.isfinite(db) else ("-inf" if db < 0 else "inf")


def decode_db(value: float | str) -> float:
    return float(value)


@dataclass(frozen=True)
class Snapshot:
    """The faders as the engineer had them when the bridge armed."""

    time_s: float
    show: str
    profile: str
    desk: str
    faders_db: dict[int, float]  # desk channel -> dB


def journal_path(directory: Path, show_name: str) -> Path:
    return directory / f"{show_name}.jsonl"


class Journal:
    """Appends records for one show to ``<directory>/<show>.jsonl``."""

    def __init__(self, directory: Path, show_name: str, wall_clock: Callable[[], float] = time.time) -> None:
        self.path = journal_path(directory, show_name)
        self.show_name = show_name
        self._wall_clock = wall_clock
        self._file: TextIO | None = None
        self._last_flush_s = -math.inf
        self.records = 0

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise JournalError(f"cannot write the journal {self.path}: {exc.strerror}") from None
        except ValueError:  # a NUL in the show's name (TOML lets a \u0000 escape through)
            raise JournalError(f"cannot write a journal for show {self.show_name!r}: the name cannot be a file name; "
                               "set [show] name to plain text") from None

    def close(self) -> None:
        """Sync and close; a journal that cannot be written is a :class:`JournalError`, the file is closed anyway."""
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            file.flush()
            os.fsync(file.fileno())
        except (OSError, ValueError) as exc:
            error = JournalError(f"cannot write the journal {self.path}: {getattr(exc, 'strerror', None) or exc}")
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
        self.write("arm", show=self.show_name, profile=profile, desk=desk,
                   faders={str(ch): encode_db(db) for ch, db in sorted(faders_db.items())})
        self._sync()

    def write(self, kind: str, **fields: Any) -> None:
        if self._file is None:
            raise JournalError(f"the journal {self.path} is not open")
        record = {"t": round(self._wall_clock(), 6), "kind": kind, **fields}
        try:
            self._file.write(json.dumps(record, allow_nan=False) + "\n")
        except (OSError, ValueError) as exc:
            raise JournalError(f"cannot write the journal {self.path}: {exc}") from None
        self.records += 1

    def flush_if_due(self, now_s: float) -> None:
        """Flush when the last flush is more than :data:`FLUSH_PERIOD_S` old."""
        if now_s - self._last_flush_s >= FLUSH_PERIOD_S:
            self._last_flush_s = now_s
            self._flush()

    def _flush(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as exc:
                raise JournalError(f"cannot write the journal {self.path}: {exc.strerror}") from None

    def _sync(self) -> None:
        if self._file is None:
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise JournalError(f"cannot write the journal {self.path}: {exc.strerror}") from None


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete record; a line cut short by a crash is skipped, not fatal."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise JournalError(f"no journal at {path}: was the show ever armed with this journal directory?") from None
    except OSError as exc:
        raise JournalError(f"cannot read the journal {path}: {exc.strerror}") from None
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "kind" in record:
            records.append(record)
    return records


def last_snapshot(directory: Path, show_name: str) -> Snapshot:
    """The most recent arm snapshot of a show."""
    path = journal_path(directory, show_name)
    arms = [r for r in read_records(path) if r.get("kind") == "arm"]
    if not arms:
        raise JournalError(f"the journal {path} holds no arm snapshot: the bridge never armed, so there is nothing to restore")
    record = arms[-1]
    try:
        faders = {int(ch): decode_db(db) for ch, db in record["faders"].items()}
        return Snapshot(float(record["t"]), str(record["show"]), str(record["profile"]), str(record["desk"]), faders)
    except (KeyError, TypeError, ValueError) as exc:
        raise JournalError(f"the last arm snapshot in {path} is damaged ({exc})") from None

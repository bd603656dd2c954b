"""The journal's periodic sync: off the control loop, and a failure there still stops the bridge arming."""
from __future__ import annotations

import errno
import os
import threading
from concurrent import futures

import pytest

from ailive.bridge import journal as journal_module
from ailive.bridge.journal import FLUSH_PERIOD_S, Journal, JournalError, read_records


def wait_until_synced(journal: Journal) -> None:
    pending = journal._pending_sync
    if pending is not None:
        pending.result(timeout=5.0)


def test_the_periodic_sync_runs_on_a_thread_of_its_own(tmp_path, monkeypatch):
    synced_on: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced_on.append(threading.current_thread().name)
        real_fsync(fd)

    monkeypatch.setattr(journal_module.os, "fsync", recording_fsync)
    with Journal(tmp_path, "show") as journal:
        journal.write("move", ch=1, to=-3.0)
        journal.flush_if_due(0.0)
        wait_until_synced(journal)
        journal.flush_if_due(0.1)  # not due yet: no second sync
        assert len(synced_on) == 1 and synced_on[0].startswith("ailive-journal-sync"), synced_on
        assert synced_on[0] != threading.current_thread().name
    assert len(synced_on) == 2 and synced_on[1] == threading.current_thread().name  # close syncs where it is
    assert [r["kind"] for r in read_records(tmp_path / "show.jsonl")] == ["move"]


def test_a_sync_that_fails_on_its_thread_is_the_next_flush_error(tmp_path, monkeypatch):
    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    journal = Journal(tmp_path, "show")
    journal.open()
    monkeypatch.setattr(journal_module.os, "fsync", disk_full)
    journal.flush_if_due(0.0)  # returns at once: the failure happens on the sync thread
    pending = journal._pending_sync
    assert pending is not None
    futures.wait([pending], timeout=5.0)
    with pytest.raises(JournalError, match="No space left on device"):
        journal.flush_if_due(FLUSH_PERIOD_S / 2)
    with pytest.raises(JournalError, match="No space left on device"):
        journal.close()  # the descriptor is closed all the same

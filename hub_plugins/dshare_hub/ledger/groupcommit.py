"""Group commit: transactions from many threads and processes made durable together.

Threads of one process queue their endorsed transactions; one of them leads, leaves the
whole queue in the inbox (`inbox.py`) and takes the ledger's write lock; whoever holds that
lock commits *every* waiting transaction, from any process, in one durable SQLite
transaction (`commit.BatchCommit`, one fsync) and leaves the outcomes for the others.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import LedgerError
from .commit import LEDGER_ERROR, CommitStats, ReadConflict
from .identity import OrgIdentity
from .inbox import Inbox, Item
from .txlog import unb64

Process = Callable[[list[tuple[int, bytes]], OrgIdentity], dict[int, dict[str, Any]]]


@dataclass
class Pending:
    item: Item
    endorser: OrgIdentity
    done: bool = False
    error: BaseException | None = None
    seq: int = 0


class GroupCommit:
    """The queue, inbox and write lock of one process's core on one ledger file.

    `process(waiting, endorser)` commits the waiting inbox entries with the lock held.
    """

    def __init__(self, path: Path, process: Process, stats: CommitStats) -> None:
        self._lock_fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        self.inbox = Inbox(path)
        self._process = process
        self.stats = stats
        self._collected: list[int] = []  # outcome ids read, deleted with the next put
        self._thread_write_lock = threading.Lock()
        self._cond = threading.Condition()
        self._queue: list[Pending] = []
        self._leader = False

    def close(self) -> None:
        self.inbox.close()
        os.close(self._lock_fd)

    def commit(self, pending: Pending) -> None:
        with self._cond:
            self._queue.append(pending)
            while not pending.done and self._leader:
                self._cond.wait()
            if pending.done:
                return
            self._leader = True
            batch, self._queue = self._queue, []
        try:
            self._commit_batch(batch)
        finally:
            with self._cond:
                self._leader = False
                self._cond.notify_all()

    def write_lock(self) -> contextlib.AbstractContextManager[None]:
        return self._lock(fcntl.LOCK_EX)

    @contextlib.contextmanager
    def _lock(self, mode: int) -> Iterator[None]:
        # flock wakes a waiting process at once; SQLite's busy handler would sleep and poll.
        # flock does not exclude threads sharing the descriptor, hence the thread lock too.
        with self._thread_write_lock:
            fcntl.flock(self._lock_fd, mode)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _commit_batch(self, batch: list[Pending]) -> None:
        try:
            forget, self._collected = self._collected, []
            ids = self.inbox.put([p.item for p in batch], forget)
            try:
                outcomes = self._await_outcomes(ids, batch)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.inbox.discard(ids)
                raise
            for inbox_id, item in zip(ids, batch, strict=True):
                self._settle(item, outcomes.get(inbox_id))
        except BaseException as exc:
            for item in batch:
                if item.error is None and not item.seq:
                    item.error = exc
        finally:
            self.stats.batches += 1
            self.stats.transactions += len(batch)
            self.stats.sizes.append(len(batch))
            with self._cond:
                for item in batch:
                    item.done = True

    def _await_outcomes(self, ids: list[int], batch: list[Pending]) -> dict[int, Any]:
        # A shared lock is granted to every waiter at once when the committing process lets
        # go, so the processes whose transactions it carried all see their outcomes together
        # instead of taking the exclusive lock one after another.
        with self._lock(fcntl.LOCK_SH):
            outcomes = self.inbox.outcomes(ids)
        if len(outcomes) == len(ids):
            self._collected.extend(ids)
            return outcomes
        with self.write_lock():
            outcomes = self.inbox.outcomes(ids)
            self._collected.extend(outcomes)
            if len(outcomes) < len(ids):
                # Nobody committed ours yet: commit everything waiting, ours included.
                processed = self._process(self.inbox.waiting(), batch[0].endorser)
                self.inbox.finish(processed, keep_for=set(ids))
                outcomes.update({i: processed[i] for i in ids if i in processed})
        return outcomes

    @staticmethod
    def _settle(item: Pending, outcome: dict[str, Any] | None) -> None:
        tx_id = item.item.proposal.tx_id
        if outcome is None or outcome.get("tx_id") != tx_id:
            item.error = LedgerError(
                LEDGER_ERROR,
                f"the outcome of transaction {tx_id} was lost; look for it with "
                "`dshare ledger log` before retrying",
                tx_id,
            )
        elif outcome["status"] == "ok":
            item.seq = int(outcome["seq"])
        elif outcome["status"] == "conflict":
            item.error = ReadConflict(unb64(outcome["key"]))
        else:
            item.error = LedgerError(outcome["code"], outcome["message"], tx_id)

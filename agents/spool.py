"""The agent's write-ahead spool: a local SQLite file that every read goes into before it is
shipped, so samples survive a controller or database outage and an agent restart.

Shipping takes the oldest rows first and deletes them only once the controller has stored them
(it ignores duplicates, so a crash between the two ships a batch twice and changes nothing). The
spool is bounded: past ``max_rows`` the oldest rows are dropped and counted. It also keeps what
must survive a restart: the next sequence number, the drop count and each GPU's last read.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from agents.samples import LastRead, last_reads_from_json, last_reads_to_json

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS sample (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Spool:
    def __init__(self, path: Path, max_rows: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._unwritten = 0
        self._said_at: float | None = None
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        with self._tx():
            # A new spool numbers its reads from the current time in ms, so a spool that was
            # deleted and recreated never reuses a sequence number the controller has stored.
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('next_seq', ?)",
                            (str(int(time.time() * 1000)),))
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('dropped', '0')")
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('last_reads', '{}')")

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def _tx(self) -> Any:
        spool = self

        class _Tx:
            def __enter__(self) -> sqlite3.Connection:
                spool._lock.acquire()
                spool.db.execute("BEGIN IMMEDIATE")
                return spool.db

            def __exit__(self, exc_type: Any, *_: Any) -> None:
                try:
                    spool.db.execute("ROLLBACK" if exc_type else "COMMIT")
                finally:
                    spool._lock.release()

        return _Tx()

    def _meta(self, key: str) -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    # -- state kept across restarts ---------------------------------------------------------

    def next_seq(self) -> int:
        with self._lock:
            return int(self._meta("next_seq"))

    def last_reads(self) -> dict[str, LastRead]:
        with self._lock:
            return last_reads_from_json(json.loads(self._meta("last_reads")))

    def dropped(self) -> int:
        """Samples lost: past ``max_rows``, or not written (a full disk)."""
        with self._lock:
            return int(self._meta("dropped")) + self._unwritten

    def pending(self) -> int:
        with self._lock:
            return _count(self.db)

    # -- writing and shipping ---------------------------------------------------------------

    def append(self, rows: list[dict[str, Any]], seq: int,
               last_reads: dict[str, LastRead]) -> int:
        """Store one read's rows with the state that produced them; returns rows dropped.
        Rows that cannot be written (the spool's disk is full) are dropped and counted too,
        in memory since the spool cannot take the count either, and said once a minute: the
        count stayed 0 while a job's samples were lost."""
        try:
            return self._append(rows, seq, last_reads)
        except sqlite3.OperationalError as e:
            with self._lock:
                self._unwritten += len(rows)
                said, self._said_at = self._said_at, time.monotonic()
            if said is None or time.monotonic() - said >= 60:
                log.error("the spool %s cannot be written (%s): %d sample(s) dropped so far",
                          self.path, e, self._unwritten)
            else:
                self._said_at = said
            return len(rows)

    def _append(self, rows: list[dict[str, Any]], seq: int,
                last_reads: dict[str, LastRead]) -> int:
        with self._tx() as db:
            db.executemany("INSERT INTO sample (body) VALUES (?)",
                           [(json.dumps(r, separators=(",", ":")),) for r in rows])
            db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (str(seq + 1),))
            db.execute("UPDATE meta SET value = ? WHERE key = 'last_reads'",
                       (json.dumps(last_reads_to_json(last_reads)),))
            over = _count(db) - self.max_rows
            if over > 0:
                first = int(db.execute("SELECT min(id) FROM sample").fetchone()[0])
                db.execute("DELETE FROM sample WHERE id < ?", (first + over,))
                db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + ? "
                           "WHERE key = 'dropped'", (over,))
            return max(0, over)

    def oldest(self, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """Up to ``limit`` of the oldest rows and the id to :meth:`ack` them with (0: none)."""
        with self._lock:
            rows = self.db.execute("SELECT id, body FROM sample ORDER BY id LIMIT ?",
                                   (limit,)).fetchall()
        if not rows:
            return 0, []
        return int(rows[-1][0]), [json.loads(b) for _, b in rows]

    def ack(self, upto: int) -> None:
        """The controller stored everything up to ``upto``: forget it."""
        with self._tx() as db:
            db.execute("DELETE FROM sample WHERE id <= ?", (upto,))


def _count(db: sqlite3.Connection) -> int:
    """Rows are added at the top and removed from the bottom, so the ids are one unbroken range:
    counting them is two index lookups, not a scan of a spool that may hold a week of samples."""
    low, high = db.execute("SELECT min(id), max(id) FROM sample").fetchone()
    return 0 if low is None else int(high) - int(low) + 1

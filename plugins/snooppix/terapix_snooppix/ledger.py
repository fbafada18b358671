"""The record of downloaded files: a small SQLite file in the download directory.

The original Snooppix kept the downloaded file names in a DBM file so that nothing was fetched twice,
even after DataTransfer had moved the files away.  SQLite does the same job, survives a crash mid-write
(each entry is one transaction) and can be read with any SQLite client.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Ledger", "LedgerEntry"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS downloads (
    name      TEXT PRIMARY KEY,
    url       TEXT NOT NULL,
    size      INTEGER NOT NULL,
    sha256    TEXT NOT NULL,
    verified  TEXT NOT NULL,
    started   REAL NOT NULL,
    finished  REAL NOT NULL
)
"""


@dataclass(frozen=True)
class LedgerEntry:
    name: str
    url: str
    size: int
    sha256: str
    verified: str
    started: float
    finished: float


class Ledger:
    """Downloaded file names, keyed by name (as the original DBM was).

    Used from one thread only (the tool's main thread records each transfer as it completes).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._conn = sqlite3.connect(self.path)
            self._conn.execute(_SCHEMA)
            self._conn.commit()
        except sqlite3.DatabaseError as exc:
            raise sqlite3.DatabaseError(f"{self.path}: cannot use as the snooppix download record: {exc}"
                                        ) from None

    def __contains__(self, name: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM downloads WHERE name = ?", (name,)).fetchone()
        return row is not None

    def get(self, name: str) -> LedgerEntry | None:
        row = self._conn.execute("SELECT name, url, size, sha256, verified, started, finished "
                                 "FROM downloads WHERE name = ?", (name,)).fetchone()
        return LedgerEntry(*row) if row else None

    def add(self, entry: LedgerEntry) -> None:
        with self._conn:
            self._conn.execute("INSERT OR REPLACE INTO downloads VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (entry.name, entry.url, entry.size, entry.sha256, entry.verified,
                                entry.started, entry.finished))

    def entries(self) -> list[LedgerEntry]:
        rows = self._conn.execute("SELECT name, url, size, sha256, verified, started, finished "
                                  "FROM downloads ORDER BY finished").fetchall()
        return [LedgerEntry(*row) for row in rows]

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

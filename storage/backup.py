"""`crm-bot backup` and `crm-bot restore` for a SQLite book (PostgreSQL has pg_dump/pg_restore).

A backup uses SQLite's online backup API: it reads one consistent snapshot while
the bot keeps writing (WAL mode: a writer does not wait for it, and what a
transaction has not committed is not in the copy). The copy is written beside the
target and renamed into place when whole, readable by its owner alone, in rollback
journal mode so it is one self-contained file.

A restore only takes a file that is a crm-bot database at a revision this version
knows (newer ones need a newer crm-bot) and passes SQLite's integrity check. It
refuses while any process has the database open (a running bot would go on writing
to the file moved aside), keeps the old database beside it as
`<name>.before-restore-<time>`, and leaves the migrations to the caller.
"""
from __future__ import annotations

import errno
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from storage.db import alembic_config

#: How long a restore waits for the database to be free before saying it is in use.
IN_USE_WAIT = 0.5


class BackupProblem(Exception):
    """Why a backup or restore was refused, as a `reason` the CLI words: `no_book` (the database has no
    crm-bot tables), `same_file`, `not_sqlite`, `not_crm` (no migration revision), `newer` (a revision
    this version does not know), `damaged` (integrity check), `in_use`, `os` (`detail` says)."""

    def __init__(self, reason: str, detail: str = "", revision: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.revision = reason, detail, revision


@dataclass(frozen=True)
class Copied:
    revision: str
    size: int  # bytes


@dataclass(frozen=True)
class Restored:
    revision: str  # the backup's, before the migrations
    aside: Path | None  # where the database it replaced is kept (None: there was none)


def backup(database: Path, target: Path) -> Copied:
    """Copy the live `database` to `target` (replaced if there) as one consistent snapshot."""
    if not database.is_file():
        raise BackupProblem("no_book")
    if target.exists() and target.resolve() == database.resolve():
        raise BackupProblem("same_file")
    partial = target.with_name(f"{target.name}.partial")
    try:
        _copy(database, partial, read_only=False)
        revision = _check(partial, missing="no_book")
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Copied(revision, target.stat().st_size)


def restore(backup_file: Path, database: Path, *, now: datetime) -> Restored:
    """Put `backup_file` in place of `database` (which nobody may have open); the old one is kept
    beside it and returned. The caller runs the migrations up to head."""
    if not backup_file.is_file():
        raise BackupProblem("os", os.strerror(errno.ENOENT))
    if database.exists() and backup_file.resolve() == database.resolve():
        raise BackupProblem("same_file")
    incoming = database.with_name(f"{database.name}.restoring")
    try:
        _copy(backup_file, incoming, read_only=True)
        revision = _check(incoming, missing="not_crm")
        aside: Path | None = database.with_name(f"{database.name}.before-restore-{now:%Y%m%d-%H%M%S}")
        if database.exists() and database.stat().st_size == 0:  # the empty file a first start makes
            database.unlink()
        if database.exists():
            _close_unused(database)
            for extra in ("", "-wal", "-shm"):  # a WAL left beside the new file would be read into it
                if database.with_name(database.name + extra).exists():
                    os.replace(database.with_name(database.name + extra), aside.with_name(aside.name + extra))
        else:
            aside = None
        os.replace(incoming, database)
    except BaseException:
        incoming.unlink(missing_ok=True)
        raise
    return Restored(revision, aside)


def _copy(source: Path, target: Path, *, read_only: bool) -> None:
    """SQLite's backup API from `source` into a new private file `target`, in one step."""
    target.unlink(missing_ok=True)
    try:
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        uri = f"{source.resolve().as_uri()}?mode=ro" if read_only else source.resolve().as_uri()
        reading = sqlite3.connect(uri, uri=True, timeout=10)
        writing = sqlite3.connect(target)
        try:
            reading.backup(writing)
            writing.execute("PRAGMA journal_mode=DELETE")
        finally:
            writing.close()
            reading.close()
    except sqlite3.DatabaseError as problem:
        raise BackupProblem("not_sqlite", str(problem)) from None
    except OSError as problem:
        raise BackupProblem("os", problem.strerror or str(problem)) from None


def _check(path: Path, *, missing: str) -> str:
    """The crm-bot revision of the SQLite file at `path`, which must pass the integrity check."""
    connection = sqlite3.connect(path)
    try:
        try:
            revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:  # no such table: not a database crm-bot made
            raise BackupProblem(missing) from None
        if revision is None:
            raise BackupProblem(missing)
        from alembic.script import ScriptDirectory  # here, not at the top: a start needs no Alembic

        known = {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
        if revision[0] not in known:
            raise BackupProblem("newer", revision=revision[0])
        verdict = connection.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            raise BackupProblem("damaged", verdict)
        return revision[0]
    except sqlite3.DatabaseError as problem:
        raise BackupProblem("not_sqlite", str(problem)) from None
    finally:
        connection.close()


def _close_unused(database: Path) -> None:
    """Refuse (`in_use`) while another connection has the database open, else fold its WAL into the
    file: in WAL mode an exclusive lock is only granted to the one connection there is."""
    connection = sqlite3.connect(database, timeout=IN_USE_WAIT, isolation_level=None)
    try:
        connection.execute("PRAGMA locking_mode=EXCLUSIVE")
        connection.execute("BEGIN EXCLUSIVE")
        connection.execute("ROLLBACK")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.OperationalError as problem:
        if "locked" in str(problem) or "busy" in str(problem):
            raise BackupProblem("in_use") from None
        raise BackupProblem("not_sqlite", str(problem)) from None
    finally:
        connection.close()

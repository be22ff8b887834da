"""Trajectory stores: an append-only JSONL file and an SQLite database behind one small interface.

Both stream (``iter`` never loads the whole store), append atomically (one ``write`` on an ``O_APPEND``
descriptor under an advisory lock; one transaction in SQLite), look records up by id, and never rewrite
what is stored to add a record.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from .errors import InputError
from .schema import SCHEMA_VERSION, Trajectory
from .schema.compat import readable

_ID_PREFIX = re.compile(rb'^\{"schema_version":"[^"]*","id":"((?:[^"\\]|\\.)*)"')


class DuplicateIdError(InputError):
    """A trajectory with this id is already stored."""


class TrajectoryStore(Protocol):
    """What every store offers."""

    path: Path

    def append(self, trajectory: Trajectory) -> None: ...

    def extend(self, trajectories: Iterable[Trajectory]) -> int: ...

    def __iter__(self) -> Iterator[Trajectory]: ...

    def get(self, trajectory_id: str) -> Trajectory: ...

    def __contains__(self, trajectory_id: object) -> bool: ...

    def __len__(self) -> int: ...


def validation_message(exc: ValidationError) -> str:
    """One line naming the first failing field and why."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ()))
    more = exc.error_count() - 1  # (counted as problems: "(and 2 more)" after a list of versions read as more of them)
    extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")  # (our own checks' words, as written)
    return f"field {field}: {message}{extra}" if field else f"{message}{extra}"  # (a check of the whole record)


RECORD_FIELDS = ("id", "steps")
"""What every stored record names (the schema has defaults for the rest: ``{}`` would pass as an empty run)."""


def parse_record(text: str | bytes, *, where: str) -> Trajectory:
    """Validate one JSON trajectory record, raising ``InputError`` that names where it came from."""
    try:
        trajectory = Trajectory.model_validate_json(text)  # fast path: one pass, no intermediate dict
    except ValueError:  # ValidationError, bad UTF-8: take the slow path below for a precise message
        trajectory = _parse_precisely(text, where)
    missing = [name for name in RECORD_FIELDS if name not in trajectory.model_fields_set]
    if missing:
        named = f"{where} (id {trajectory.id})" if "id" in trajectory.model_fields_set else where
        raise InputError("missing field " + " and ".join(repr(name) for name in missing), where=named)
    return trajectory


def storable(trajectories: Iterable[Trajectory], where: str) -> list[tuple[Trajectory, str]]:
    """Each trajectory with the JSON a store writes for it, checked to read back (one changed in place after it was
    built can break what loading checks: a label on no step, a NaN where a number is needed) and to hold no id twice;
    ``InputError`` naming the first that fails, before anything is written."""
    out: list[tuple[Trajectory, str]] = []
    ids: set[str] = set()
    for trajectory in trajectories:
        if trajectory.id in ids:
            raise DuplicateIdError(f"trajectory {trajectory.id} comes twice in the batch; nothing was stored",
                                   where=where)
        ids.add(trajectory.id)
        try:
            text = trajectory.to_json()
        except ValueError as exc:  # (PydanticSerializationError: content no JSON can hold)
            raise InputError(f"cannot be stored, it does not convert to JSON ({exc}); nothing was stored",
                             where=f"{where} (id {trajectory.id})") from None
        try:
            parse_record(text, where=where)
        except InputError as exc:
            named = exc.where or where
            problem = str(exc).removeprefix(f"{named}: ")
            raise InputError(f"cannot be stored, it would not read back ({problem}); nothing was stored",
                             where=named) from None
        out.append((trajectory, text))
    return out


def utf8_text(data: str | bytes, where: str) -> str:
    """``data`` as text, read as UTF-8 (a BOM dropped); ``InputError`` naming the byte where it is not UTF-8 (JSON's own
    reader would guess UTF-16 from two odd bytes and complain about that)."""
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte {exc.start}: {exc.reason})", where=where) from None


def read_utf8_file(path: str | os.PathLike[str]) -> str:
    """A text file read as UTF-8 (a BOM, as some editors write, dropped); ``InputError`` naming the line where it is
    not UTF-8."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text (byte {exc.start}: {exc.reason})", where=f"{path}:{line}") from None


def _parse_precisely(text: str | bytes, where: str) -> Trajectory:
    text = utf8_text(text, where)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, nesting too deep
        raise InputError(f"not valid JSON ({exc})", where=where) from None
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object, got {type(data).__name__}", where=where)
    data = readable(data, Trajectory, SCHEMA_VERSION, where=where)  # (a later 1.x release's record)
    try:
        return Trajectory.model_validate(data)
    except ValidationError as exc:
        record = data.get("id")
        label = f"{where} (id {record})" if isinstance(record, str) else where
        raise InputError(validation_message(exc), where=label) from None


def _parse_each_located(
    records: Iterable[tuple[str | bytes, str]],
    errors: list[InputError] | None,
    *,
    parse: Callable[[str | bytes, str], Trajectory] | None = None,
) -> Iterator[tuple[str, Trajectory]]:
    """Parse ``(text, where)`` records in order, each with its place (``path:line``, ``path#row``); a bad one raises,
    or with ``errors`` given is collected there."""
    for text, where in records:
        try:
            yield where, parse(text, where) if parse else parse_record(text, where=where)
        except InputError as exc:
            if errors is None:
                raise
            errors.append(exc)


TORN_END = b"\x00\n"
"""How a writer ends the torn last line it finds (a writer killed mid-record): no whole record holds a NUL byte (JSON
escapes it), so readers know the line for a torn record, never stored, and its id stays free for a new append."""


_SQLITE_SUFFIXES = frozenset({".db", ".sqlite", ".sqlite3"})
_SQLITE_COLUMNS = ("seq", "id", "framework", "task", "created_at", "data")


def foreign_content(path: Path) -> str:
    """What a non-empty file that is no trajectory store holds ('' for a store, an empty or a missing file)."""
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return ""
    except OSError:
        return ""
    if path.suffix.lower() in _SQLITE_SUFFIXES:
        try:
            with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)) as db:
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                columns = {row[1] for row in db.execute("PRAGMA table_info(trajectories)")}
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                return "something that is not an SQLite database"
            # which tables it holds cannot be told while another process writes it: a store is in WAL mode (where
            # that lock is rare); another program's database in rollback mode is not taken for one
            return "" if _in_wal_mode(path) else "a database another program holds locked"
        except sqlite3.Error:
            return "something that is not an SQLite database"
        if "trajectories" in tables:  # (another program's table of that name is no store's)
            missing = [name for name in _SQLITE_COLUMNS if name not in columns]
            return f"another database (its table trajectories has no column {missing[0]})" if missing else ""
        others = sorted(tables - {"sqlite_sequence"})
        return f"another database (tables {', '.join(others[:3])})" if others else ""
    try:
        with path.open("rb") as fh:
            line = next((line for line in fh if line.strip()), b"")
    except OSError:
        return ""
    if not line or line.startswith(b'{"schema_version"') or line.endswith(TORN_END):
        return ""  # (a store's records begin so; a torn first record a writer ended is no record)
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        # a torn first record, not yet ended by a writer, is no record; a whole line that is not JSON is foreign
        return "lines that are not JSON records" if line.endswith(b"\n") else ""
    if _trajectory_shaped(record):
        return ""
    keys = ", ".join(list(record)[:4]) if isinstance(record, dict) else type(record).__name__
    return f"other records ({keys})"


def _trajectory_shaped(record: Any) -> bool:
    """Whether a JSON record is shaped as a trajectory (as it may be once re-serialized or written by hand): an id as
    text or a schema_version, and steps that are objects holding a step's required index and agent. Another tool's
    records may have ``id`` and ``steps`` keys too, their steps strings or numbers."""
    if not isinstance(record, dict) or not isinstance(record.get("steps"), list):
        return False
    if not isinstance(record.get("id"), str) and "schema_version" not in record:
        return False
    return all(isinstance(step, dict) and "index" in step and "agent" in step for step in record["steps"])


def _in_wal_mode(path: Path) -> bool:
    """Whether an SQLite file is in WAL mode (its header's read and write versions are 2), as stores are."""
    try:
        with path.open("rb") as fh:
            header = fh.read(20)
    except OSError:
        return False
    return header.startswith(b"SQLite format 3\x00") and header[18:20] == b"\x02\x02"


def json_file_records(path: Path, data: Any) -> Iterator[tuple[str, Trajectory | InputError]]:
    """(place, trajectory or its error) for each record of a ``.json`` file's parsed ``data``: one trajectory, or a
    list of them."""
    records = data if isinstance(data, list) else [data]
    for index, record in enumerate(records):
        where = f"{path}[{index}]" if isinstance(data, list) else str(path)
        try:
            yield where, parse_record(json.dumps(record), where=where)
        except InputError as exc:
            yield where, exc


class TornWrite(InputError):
    """A last record a writer stopped in the middle of (killed mid-append): never stored, its id free."""


def whole_records(store: Any) -> Iterator[Trajectory]:
    """The trajectories of ``store``, a torn record skipped (never stored: a resume appends its run again); other
    damage is raised once the whole records have been read."""
    problems: list[InputError] = []
    yield from store.iter(errors=problems)
    damaged = [problem for problem in problems if not isinstance(problem, TornWrite)]
    if damaged:
        raise damaged[0]


def _parse_line(line: str | bytes, where: str) -> Trajectory:
    """Parse one JSONL line; a bad last line without its newline, or a line a later writer ended as torn, is reported
    as a torn write."""
    if isinstance(line, bytes) and line.endswith(TORN_END):
        raise TornWrite("a torn write: a writer stopped in the middle of this record, which was never stored",
                        where=where)
    try:
        return parse_record(line, where=where)
    except InputError as exc:
        if (line.endswith(b"\n") if isinstance(line, bytes) else line.endswith("\n")):
            raise
        detail = str(exc).removeprefix(f"{exc.where}: ")
        raise TornWrite(f"incomplete last line, a torn write? ({detail})", where=exc.where) from None


def _whole_record(line: bytes) -> bool:
    """Whether a line is a whole JSON record with an id (a last line written without its newline, not torn)."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(record, dict) and isinstance(record.get("id"), str)


def _last_line(fd: int, end: int) -> bytes:
    """The bytes after the last newline of the file open as ``fd`` (``end`` long)."""
    start = end
    while start > 0:
        chunk = os.pread(fd, min(start, 1 << 16), start - min(start, 1 << 16))
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            start = start - len(chunk) + newline + 1
            break
        start -= len(chunk)
    return os.pread(fd, end - start, start)


class JsonlStore:
    """Append-only JSON Lines file of trajectories, one per line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file = self.path.absolute()  # (a process that changes folder keeps writing the store it opened)
        self._index: dict[str, int] | None = None
        self._indexed_to = 0
        # the file indexed, told by (st_dev, st_ino) and where its last indexed line starts with what (a file
        # deleted and made anew may get the same inode number)
        self._indexed_file: tuple[int, int] | None = None
        self._last_line: tuple[int, bytes] = (0, b"")
        self._vetted: tuple[int, int] | None = None  # the file an append found to be a store (see _check_is_store)
        self._lock = threading.Lock()

    def _refresh_index(self, fd: int | None = None) -> dict[str, int]:
        """Index the lines appended since the last look (by this or another process); complete lines only. A file
        deleted, replaced or cut shorter since is indexed afresh. ``fd``: the file open already (a writer's)."""
        index = self._forget(self._indexed_file) if self._index is None else self._index
        try:
            fh = open(fd, "rb", closefd=False) if fd is not None else self._file.open("rb")
        except FileNotFoundError:
            return self._forget(None)
        with fh:
            info = os.fstat(fh.fileno())
            start, prefix = self._last_line
            if ((info.st_dev, info.st_ino) != self._indexed_file or info.st_size < self._indexed_to
                    or os.pread(fh.fileno(), len(prefix), start) != prefix):
                index = self._forget((info.st_dev, info.st_ino))
            fh.seek(self._indexed_to)
            offset = self._indexed_to
            for line in fh:
                if not line.endswith(b"\n") and not _whole_record(line):
                    break  # a torn (or still being written) last line: not indexed, reported by iter()
                self._last_line = (offset, line[:256])
                if line.strip() and not line.endswith(TORN_END):  # (a torn record is not stored: its id is free)
                    trajectory_id = self._line_id(line)
                    if trajectory_id is not None:
                        index.setdefault(trajectory_id, offset)
                offset += len(line)
            self._indexed_to = offset
        return index

    def _forget(self, file: tuple[int, int] | None) -> dict[str, int]:
        """Start the index afresh, for ``file``."""
        self._index, self._indexed_to, self._indexed_file, self._last_line = {}, 0, file, (0, b"")
        return self._index

    @staticmethod
    def _line_id(line: bytes) -> str | None:
        match = _ID_PREFIX.match(line)
        try:
            if match:
                return json.loads(b'"' + match.group(1) + b'"')
            data = json.loads(line)
        except (ValueError, RecursionError):
            return None
        found = data.get("id") if isinstance(data, dict) else None
        return found if isinstance(found, str) else None

    def _ids(self) -> dict[str, int]:
        with self._lock:  # (a reader that indexed afresh while another thread appended lost that append's id)
            return self._refresh_index()

    def append(self, trajectory: Trajectory) -> None:
        """Append one trajectory; ``DuplicateIdError`` if its id is already stored."""
        self.extend([trajectory])

    def extend(self, trajectories: Iterable[Trajectory]) -> int:
        """Append several trajectories, each line written whole with one ``write``: all of them, or (a repeated id,
        one that would not read back) none."""
        batch = storable(trajectories, str(self.path))
        count = 0
        with self._lock:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            fd = self._locked_descriptor()
            try:
                self._check_is_store(fd)
                end = os.lseek(fd, 0, os.SEEK_END)
                if end and os.pread(fd, 1, end - 1) != b"\n":  # a last line without its newline
                    # a whole record (a file written by hand, lines joined with "\n") gets its newline; a torn one
                    # is ended as torn, so it cannot swallow the next record
                    os.write(fd, b"\n" if _whole_record(_last_line(fd, end)) else TORN_END)
                index = self._refresh_index(fd)  # under the lock: sees every other writer's records
                stored = [t.id for t, _ in batch if t.id in index]
                if stored:
                    raise DuplicateIdError(f"trajectory {stored[0]} is already stored"
                                           + ("; nothing was stored" if len(batch) > 1 else ""), where=str(self.path))
                for trajectory, text in batch:
                    line = (text + "\n").encode("utf-8")
                    offset = os.lseek(fd, 0, os.SEEK_END)
                    _write_all(fd, line)
                    index[trajectory.id] = offset
                    if self._indexed_to == offset:
                        self._indexed_to, self._last_line = offset + len(line), (offset, line[:256])
                    count += 1
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        return count

    def _check_is_store(self, fd: int) -> None:
        """Refuse to append to a file that holds something else (a tasks or results file, TracerTraj rows, notes):
        the runs would spoil it, and it would not read back as a store. Looked at once per file a handle writes."""
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) == self._vetted:
            return
        what = foreign_content(self._file)
        if what:
            raise InputError(f"holds {what}, not trajectories: append the runs to a store", where=str(self.path))
        self._vetted = (info.st_dev, info.st_ino)

    def _locked_descriptor(self) -> int:
        """The file at ``path`` open for appending, under its exclusive lock. A file replaced while the lock was
        awaited (``import --replace``, a writer that moves a new file in) is let go and the new one taken: a record
        written to the file replaced would be lost."""
        while True:
            fd = os.open(self._file, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                held, now = os.fstat(fd), os.stat(self._file)
                if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                    return fd
            except FileNotFoundError:  # (deleted meanwhile: made anew on the next turn)
                pass
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # (closing lets the lock go)

    def iter_raw(self) -> Iterator[tuple[int, bytes]]:
        """(line number, raw line) for every non-empty line the store held when the reading began, streamed.

        The size is taken under a shared lock, which waits for a writer in the middle of a record (writers hold the
        exclusive lock while they write): a record another process appends meanwhile is never read half-written,
        whatever its size. A torn line a dead writer left is still read, and reported."""
        if not self._file.exists():
            return
        with self._file.open("rb") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
            try:
                size = os.fstat(fh.fileno()).st_size
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            offset = 0
            for number, line in enumerate(fh, start=1):
                if offset >= size:
                    return
                if offset + len(line) > size:  # (a torn line a later writer ended: as it was at the start)
                    line = line[:size - offset]
                offset += len(line)
                if line.strip():
                    yield number, line

    def iter(self, *, errors: list[InputError] | None = None) -> Iterator[Trajectory]:
        """Stream the trajectories; with ``errors`` given, bad lines are collected there and skipped."""
        for _where, trajectory in self.iter_located(errors=errors):
            yield trajectory

    def iter_located(self, *, errors: list[InputError] | None = None) -> Iterator[tuple[str, Trajectory]]:
        """``iter`` with each trajectory's place, ``path:line``."""
        lines = ((line, f"{self.path}:{number}") for number, line in self.iter_raw())
        yield from _parse_each_located(lines, errors, parse=_parse_line)

    def __iter__(self) -> Iterator[Trajectory]:
        return self.iter()

    def get(self, trajectory_id: str) -> Trajectory:
        """The trajectory with this id (``KeyError`` if absent)."""
        for _ in range(2):  # (a second look after indexing afresh: the file changed between the index and the read)
            offset = self._ids().get(trajectory_id) if isinstance(trajectory_id, str) else None
            if offset is None:
                raise KeyError(trajectory_id)
            try:
                with self._file.open("rb") as fh:
                    fh.seek(offset)
                    line = fh.readline()
            except FileNotFoundError:
                raise KeyError(trajectory_id) from None
            if self._line_id(line) == trajectory_id:
                return parse_record(line, where=f"{self.path}@{offset}")
            self._index = None  # the line there holds another record now: the file was rewritten in place
        raise KeyError(trajectory_id)

    def __contains__(self, trajectory_id: object) -> bool:
        return isinstance(trajectory_id, str) and trajectory_id in self._ids()  # (ids are text: 123 is none)

    def __len__(self) -> int:
        return len(self._ids())


class SqliteStore:
    """Trajectories in an SQLite database (one row each, WAL mode, one transaction per append).

    Reading never writes to the file: a store that is read-only (its file's or its folder's permissions) reads, and
    one that does not exist reads as empty and is not made; the first append makes it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file = self.path.absolute()  # (a process that changes folder keeps writing the store it opened)
        self._local = threading.local()
        if self.path.exists():  # (a file that is no database is told now, not when the first run ends)
            with self._errors():
                self._reader()

    @staticmethod
    def _use_wal(db: sqlite3.Connection, patience_s: float = 30.0) -> None:
        """Switch the database to WAL mode (once per file). Switching takes an exclusive lock and SQLite answers
        "database is locked" at once, busy timeout or not, while other processes are writing a brand-new file: so
        it is tried again for a while (a store already in WAL mode answers at once)."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite failures (not a database, corrupt, locked too long) as ``InputError`` naming the file."""
        try:
            yield
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise InputError(f"SQLite store unusable ({exc})", where=str(self.path)) from None

    def _connection(self) -> sqlite3.Connection | None:
        """This thread's connection, while the file it opened is still the one at ``path``: a database deleted, or
        replaced by another file (moved in by another program), is no longer the store, and what was appended to it
        would be lost, so its connection is closed and the file now there opened."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None and (self._local.immutable or self._local.file != _file_id(self._file)):
            self.close()  # (an immutable snapshot too: it would never see what a writer appends)
            return None
        return db

    def _opened(self, db: sqlite3.Connection, immutable: bool = False) -> sqlite3.Connection:
        self._local.db, self._local.file, self._local.ready = db, _file_id(self._file), False
        self._local.immutable = immutable
        return db

    def _reader(self) -> sqlite3.Connection | None:
        """This thread's connection, to read with; None while the database does not exist."""
        db = self._connection()
        if db is None and self._file.exists():
            db = self._opened(*_open_to_read(self._file))
        return db

    def _writer(self) -> sqlite3.Connection:
        """This thread's connection, to write with: the database made (its folder too) in WAL mode, with its table,
        on the first write."""
        db = self._connection()
        if db is None:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            db = self._opened(sqlite3.connect(self._file, timeout=30))
        if not self._local.ready:
            what = foreign_content(self._file)  # (another program's database: never switched to WAL, never added to)
            if what.startswith(("another database", "a database")):  # (a file that cannot be read: SQLite says why)
                self.close()
                raise InputError(f"holds {what}, not trajectories: append the runs to a store", where=str(self.path))
            try:
                self._use_wal(db)
                db.execute(
                    "CREATE TABLE IF NOT EXISTS trajectories (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                    "id TEXT UNIQUE NOT NULL, framework TEXT, task TEXT, created_at REAL, data TEXT NOT NULL)"
                )
            except sqlite3.Error:
                self.close()  # (a store this process may not write: its reads open it their own way)
                raise
            self._local.ready = True
        return db

    def _read(self, query: str, parameters: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        """The rows ``query`` answers; none from a database not made yet, or made without the table."""
        with self._errors():
            db = self._reader()
            if db is None:
                return []
            try:
                return db.execute(query, parameters).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise

    def append(self, trajectory: Trajectory) -> None:
        """Insert one trajectory; ``DuplicateIdError`` if its id is already stored."""
        self.extend([trajectory])

    def extend(self, trajectories: Iterable[Trajectory]) -> int:
        """Insert several trajectories in one transaction: all of them, or (a repeated id, one that would not read
        back) none."""
        rows = [(t.id, t.framework, t.task, t.created_at, text) for t, text in storable(trajectories, str(self.path))]
        try:
            with self._errors(), self._writer() as db:
                db.executemany(
                    "INSERT INTO trajectories (id, framework, task, created_at, data) VALUES (?, ?, ?, ?, ?)", rows
                )
        except sqlite3.IntegrityError as exc:
            stored = self._first_stored([row[0] for row in rows])
            taken = f"trajectory {stored} is already stored" if stored else f"a trajectory id is already stored ({exc})"
            raise DuplicateIdError(taken + ("; nothing was stored" if len(rows) > 1 else ""),
                                   where=str(self.path)) from None
        return len(rows)

    def replace_with(self, source: SqliteStore) -> int:
        """Hold the trajectories ``source`` holds instead of its own, in one transaction; how many. The file stays
        the same: handles open on it, in this process or another, read the old records or the new ones, and what they
        append later is kept (a new file moved in would leave them writing to one no one reads)."""
        with self._errors():
            reader = source._reader()
        with self._errors(), self._writer() as db:
            db.execute("DELETE FROM trajectories")
            if reader is not None:
                db.executemany(
                    "INSERT INTO trajectories (id, framework, task, created_at, data) VALUES (?, ?, ?, ?, ?)",
                    reader.execute("SELECT id, framework, task, created_at, data FROM trajectories ORDER BY seq"))
            count: int = db.execute("SELECT COUNT(*) FROM trajectories").fetchone()[0]
        return count

    def _first_stored(self, ids: list[str]) -> str | None:
        """The first of ``ids`` the store holds (asked in chunks: SQLite limits a statement's parameters)."""
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            found = {row[0] for row in self._read(
                f"SELECT id FROM trajectories WHERE id IN ({','.join('?' * len(chunk))})", chunk)}
            for trajectory_id in chunk:
                if trajectory_id in found:
                    return trajectory_id
        return None

    def iter(self, *, errors: list[InputError] | None = None) -> Iterator[Trajectory]:
        """Stream the trajectories in insertion order; with ``errors`` given, bad rows are collected there."""
        for _where, trajectory in self.iter_located(errors=errors):
            yield trajectory

    def iter_located(self, *, errors: list[InputError] | None = None) -> Iterator[tuple[str, Trajectory]]:
        """``iter`` with each trajectory's place, ``path#row``.

        The stream reads on a connection of its own: its read snapshot would otherwise hold the thread's shared
        connection, whose ``get``, ``in`` and ``len`` would miss what other processes append meanwhile and whose
        appends SQLite would refuse as out of date."""
        if not self._file.exists():
            return
        with self._errors():
            reader, _ = _open_to_read(self._file)  # (a stream of its own, closed at its end)
        try:
            with self._errors():
                try:
                    cursor = reader.execute("SELECT seq, data FROM trajectories ORDER BY seq")
                except sqlite3.OperationalError as exc:
                    if "no such table" in str(exc):
                        return
                    raise
            while True:
                with self._errors():
                    rows = cursor.fetchmany(64)
                if not rows:
                    return
                yield from _parse_each_located(((data, f"{self.path}#{seq}") for seq, data in rows), errors)
        finally:
            reader.close()

    def __iter__(self) -> Iterator[Trajectory]:
        return self.iter()

    def get(self, trajectory_id: str) -> Trajectory:
        """The trajectory with this id (``KeyError`` if absent)."""
        if not isinstance(trajectory_id, str):  # (SQLite would take 123 for "123")
            raise KeyError(trajectory_id)
        rows = self._read("SELECT seq, data FROM trajectories WHERE id = ?", (trajectory_id,))
        if not rows:
            raise KeyError(trajectory_id)
        seq, data = rows[0]
        return parse_record(data, where=f"{self.path}#{seq}")

    def __contains__(self, trajectory_id: object) -> bool:
        return isinstance(trajectory_id, str) and bool(self._read("SELECT 1 FROM trajectories WHERE id = ?",
                                                                  (trajectory_id,)))

    def __len__(self) -> int:
        rows = self._read("SELECT COUNT(*) FROM trajectories")
        return rows[0][0] if rows else 0

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
            self._local.db = None


def _file_id(path: Path) -> tuple[int, int] | None:
    """Which file ``path`` names now, (st_dev, st_ino); None where none."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _open_to_read(path: Path) -> tuple[sqlite3.Connection, bool]:
    """A connection to the database at ``path`` that never writes to it nor makes it: one that could write where
    the file may be written, else a read-only one. A WAL database in a folder that takes no new file (where SQLite
    cannot make its ``-shm``) is read as immutable (True with the connection: a snapshot, never to be kept), unless a
    ``-wal`` file beside it may hold records."""
    resolved = path.resolve()  # (a link's database keeps its -wal beside itself, not beside the link)
    uri = resolved.as_uri()
    wal = resolved.with_name(resolved.name + "-wal")
    mode, fallbacks = "rw", ["ro"] + ([] if wal.exists() else ["ro&immutable=1"])
    while True:
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(f"{uri}?mode={mode}", uri=True, timeout=30)
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return db, "immutable" in mode
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            if not (fallbacks and isinstance(exc, sqlite3.OperationalError)
                    and any(words in str(exc) for words in ("readonly", "unable to open"))):
                raise
            mode = fallbacks.pop(0)


def _write_all(fd: int, data: bytes) -> None:
    """One ``write`` for the whole line (and more only if the OS wrote part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


_READ_AS_OTHER_FORMATS = {".json": "one JSON document", ".parquet": "Parquet rows", ".pq": "Parquet rows"}


def _store_written_as(path: Path) -> bool:
    """Whether a file under another format's name is a JSONL store all the same (``trace(store="runs.json")`` of
    earlier versions wrote one): its first lines are whole trajectory records, and it opens as the store it is."""
    try:
        with path.open("rb") as fh:
            first, second = fh.readline(), fh.readline()
    except OSError:
        return False
    # (two records at least: a file of one is a trajectory file, which an append would make unreadable as one)
    return all(line.startswith(b'{"schema_version"') and line.endswith(b"\n") for line in (first, second))


def open_store(path: str | os.PathLike[str]) -> JsonlStore | SqliteStore:
    """A store for ``path``: SQLite for ``.db``/``.sqlite``/``.sqlite3``, JSONL otherwise; ``InputError`` for a name
    whose suffix readers take for another format (``runs.json``: the JSON lines written there would not read back),
    or that names a folder."""
    suffix = Path(path).suffix.lower()
    if suffix in _READ_AS_OTHER_FORMATS and not _store_written_as(Path(path)):
        raise InputError(f"a {suffix} file is read as {_READ_AS_OTHER_FORMATS[suffix]}, not as a trajectory store: "
                         "name the store .jsonl, or .db for SQLite", where=str(path))
    if Path(path).is_dir():
        raise InputError("is a folder, not a trajectory store (a .jsonl file, or a .db for SQLite)", where=str(path))
    return SqliteStore(path) if suffix in _SQLITE_SUFFIXES else JsonlStore(path)

"""The lock against overlapping runs: a shard's run holds it, so a second run of the same shard, or a run of
another plan (another shard count) started meanwhile, exits at once. PostgreSQL: advisory locks of the
current schema; SQLite: flock(2) on files beside the database. Both vanish with a process that dies.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import glob
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from core.errors import GrowWowError
from etl.shard import Shard


class AlreadyRunning(GrowWowError):
    """Another run holds the lock of this shard, or runs a plan that overlaps it."""

    exit_code = 75  # EX_TEMPFAIL: try again later


@contextmanager
def etl_lock(engine: Engine, shard: Shard) -> Iterator[None]:
    """Hold the lock of a shard for the duration, and keep out the runs whose sensors overlap its own.

    Shards of one plan (the same n) run side by side; the same shard twice, or plans of different n (the
    whole run is 1/1), never do: 1/16 shares sensors with 1/4, since crc mod 16 = 0 implies crc mod 4 = 0.
    Each run holds a shared lock on its plan and an exclusive one on its shard, and takes them under a
    short exclusive gate after finding no other plan's lock held. PostgreSQL: advisory locks of the
    current schema; SQLite: flock(2) on files beside the database. Both vanish with a process that dies.
    """
    locks = _AdvisoryLocks(engine) if engine.dialect.name == "postgresql" else _FileLocks(engine)
    try:
        with locks.gate():
            others = sorted(locks.plans_held() - {shard.count})
            if others:
                raise AlreadyRunning(_overlapping(shard, others))
            if not locks.hold_shard(shard):
                raise AlreadyRunning(_taken(shard))
            locks.hold_plan(shard.count)
        yield
    finally:
        locks.release()


def _plan_name(count: int) -> str:
    return "'all'" if count == 1 else f"'{count} shards'"


def _overlapping(shard: Shard, counts: list[int]) -> str:
    plans = ", ".join(_plan_name(n) for n in counts)
    return f"another GROW–WOW run of plan {plans} is running and overlaps shard {shard}; not starting"


def _taken(shard: Shard) -> str:
    plan = "" if shard.whole else f" (plan of {shard.count} shards)"
    return f"another GROW–WOW run holds the lock of shard {shard}{plan}; not starting"


def shard_lock_held(engine: Engine, shard: Shard) -> bool:
    """Does any process hold the lock of this shard now (as etl_lock does while the shard runs)?

    Only looks: PostgreSQL reads pg_locks; SQLite tries the shard's lock file for a moment, under the
    gate, so a run starting meanwhile never finds its lock taken by the look (a missing file: not held).
    A process that died holds nothing: its locks went with it.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            space, number = _shard_key(connection.scalar(text("SELECT current_schema()")), shard)
            return bool(
                connection.scalar(
                    text(
                        "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted"
                        " AND objsubid = 2 AND classid::bigint = :space AND objid::bigint = :number"
                        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
                    ),
                    {"space": space, "number": number},
                )
            )
    locks = _FileLocks(engine, make_folder=False)  # a look makes nothing
    path = locks.shard_path(shard)
    if not Path(path).exists():
        return False
    with locks.gate():
        return _flocked(path, create=False)


def _key(name: str) -> int:
    """A positive int4 for the first half of a two-part advisory lock key (pg_locks shows it as classid)."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def _plans_key(schema: str) -> int:
    """The first half of the keys of the gate, (plans, 0), and of the plans, (plans, n) for plan n."""
    return _key(f"grow-wow etl plans {schema}")


def _shard_key(schema: str, shard: Shard) -> tuple[int, int]:
    """The two-part advisory lock key of a shard, held exclusively by its run."""
    return _key(f"grow-wow etl shards of {shard.count} {schema}"), shard.index


class _AdvisoryLocks:
    """PostgreSQL session advisory locks, on a connection of their own. In autocommit: a transaction left
    open all night would hold back vacuum, and a server's idle-in-transaction timeout would end the
    session and silently drop the locks."""

    def __init__(self, engine: Engine):
        self.connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        schema = self.connection.scalar(text("SELECT current_schema()"))
        self.plans = _plans_key(schema)  # (plans, 0) is the gate, (plans, n) plan n
        self.schema = schema

    def _lock(self, function: str, space: int, number: int) -> bool:
        statement = text(f"SELECT {function}(CAST(:space AS integer), CAST(:number AS integer))")
        return bool(self.connection.scalar(statement, {"space": space, "number": number}))

    @contextmanager
    def gate(self) -> Iterator[None]:
        self._lock("pg_advisory_lock", self.plans, 0)  # held for a moment by whoever checks the plans
        try:
            yield
        finally:
            self._lock("pg_advisory_unlock", self.plans, 0)

    def plans_held(self) -> set[int]:
        held = self.connection.scalars(
            text(
                "SELECT DISTINCT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND objsubid = 2 AND classid::bigint = :plans AND objid::bigint > 0"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"plans": self.plans},
        )
        return set(held)

    def hold_plan(self, count: int) -> None:
        self._lock("pg_advisory_lock_shared", self.plans, count)  # nobody takes it exclusively

    def hold_shard(self, shard: Shard) -> bool:
        return self._lock("pg_try_advisory_lock", *_shard_key(self.schema, shard))

    def release(self) -> None:
        try:
            self.connection.execute(text("SELECT pg_advisory_unlock_all()"))
        except DBAPIError:
            self.connection.invalidate()  # the session is gone, and its locks with it
        finally:
            self.connection.close()


class _FileLocks:
    """flock(2) on files beside the SQLite file they guard: `<db>.etl-gate.lock`, `<db>.etl-plan-<n>.lock`
    held shared by every run of plan n, and `<db>.etl-<i>of<n>.lock` (or `.etl-all.lock`) held by the run
    of that shard. An in-memory database has no file: its lock files go to the temporary folder."""

    def __init__(self, engine: Engine, make_folder: bool = True):
        database = engine.url.database
        in_memory = not database or database == ":memory:"
        self.prefix = str(Path(tempfile.gettempdir()) / "grow-wow-memory") if in_memory else database
        if make_folder:
            Path(self.prefix).parent.mkdir(parents=True, exist_ok=True)
        self.held: list[IO] = []

    def _path(self, name: str) -> str:
        return f"{self.prefix}.etl-{name}.lock"

    def shard_path(self, shard: Shard) -> str:
        return self._path(str(shard).replace("/", "of"))

    @contextmanager
    def gate(self) -> Iterator[None]:
        with open(self._path("gate"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # held for a moment by whoever checks the plans
            yield

    def plans_held(self) -> set[int]:
        held = set()
        prefix = self._path("plan-").removesuffix(".lock")
        for path in glob.glob(glob.escape(prefix) + "*.lock"):
            count = path[len(prefix) : -len(".lock")]
            if count.isdigit() and _flocked(path):
                held.add(int(count))
        return held

    def hold_plan(self, count: int) -> None:
        self._hold(self._path(f"plan-{count}"), fcntl.LOCK_SH)  # waits at most for another's try

    def hold_shard(self, shard: Shard) -> bool:
        handle = self._hold(self.shard_path(shard), fcntl.LOCK_EX | fcntl.LOCK_NB)
        if handle is None:
            return False
        handle.truncate(0)  # for people: since when
        handle.write(f"{dt.datetime.now(dt.UTC).isoformat()}\n")
        handle.flush()
        return True

    def _hold(self, path: str, mode: int) -> IO | None:
        """The file opened and flocked in `mode`, kept open (so locked) until released; None if busy."""
        handle = open(path, "a")  # noqa: SIM115 - closed by release(), which lets go of the lock
        try:
            fcntl.flock(handle, mode)
        except BlockingIOError:
            handle.close()
            return None
        self.held.append(handle)
        return handle

    def release(self) -> None:
        for handle in self.held:
            handle.close()  # closing lets go of its flock
        self.held.clear()


def _flocked(path: str, create: bool = True) -> bool:
    """Does another open file hold a flock on it? Only then does a try at an exclusive one fail (closing
    the file lets go of the try at once). Without `create`, a missing file is held by nobody."""
    try:
        handle = open(path, "a" if create else "r")  # noqa: SIM115 - closed just below
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False

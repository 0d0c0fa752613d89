"""What every ETL step shares: its context, the lock against overlapping runs, and its record in etl_runs.

A step is a function `run(context) -> rows written`. Run on its own (`python -m etl.<step>`) or by the
runner (`python -m etl run`), it holds the lock of its shard, so a second run of it, or a run of another
plan (another shard count) started meanwhile, exits at once; and it leaves one etl_runs row: started,
finished, rows, status and the error in one line.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import fcntl
import glob
import logging
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import click
from sqlalchemy import Connection, Engine, insert, text, update
from sqlalchemy.exc import DBAPIError

from core.errors import GrowWowError
from core.schema import etl_runs
from etl.quarantine import clean_text
from etl.settings import EtlSettings
from etl.shard import Shard, ShardParam

log = logging.getLogger(__name__)


class AlreadyRunning(GrowWowError):
    """Another run holds the lock of this shard, or runs a plan that overlaps it."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class StepFailed(GrowWowError):
    """A step did part of its work and could not do the rest; what it loaded is kept."""


class Tally:
    """What went wrong upstream during a step, by name (gaps, quarantined, future, …): counted from any
    thread, kept in the step's etl_runs row."""

    def __init__(self):
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._counts[name] += n

    def add_all(self, counts: dict[str, int]) -> None:
        """Add what another tally counted (`as_dict`), such as a forked process's."""
        for name, n in counts.items():
            self.add(name, n)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {name: int(n) for name, n in sorted(self._counts.items()) if n}


@dataclass(frozen=True)
class StepContext:
    settings: EtlSettings
    engine: Engine
    shard: Shard
    now: dt.datetime
    tally: Tally = field(default_factory=Tally)

    @property
    def progress(self) -> bool:
        """Progress bars on a terminal; plain log lines under cron."""
        return sys.stderr.isatty()


Step = Callable[[StepContext], int]


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


def run_recorded(name: str, step: Step, context: StepContext) -> int:
    """Run a step (the caller holds the lock), recording it in etl_runs; re-raise its failure."""
    engine = context.engine
    shard = None if context.shard.whole else str(context.shard)
    with engine.begin() as connection:
        # A run still marked running can only be one that was killed: we hold the lock.
        mark_interrupted(connection, name, shard, "interrupted (killed or crashed)")
        run_id = connection.execute(
            insert(etl_runs)
            .values(step=name, shard=shard, started_at=dt.datetime.now(dt.UTC), status="running")
            .returning(etl_runs.c.run_id)
        ).scalar_one()
    started = time.perf_counter()
    log.info("%s (shard %s) started", name, context.shard)
    context = replace(context, tally=Tally())  # each step counts its own
    status, rows, error = "failed", None, None
    try:
        rows = step(context)
        status = "ok"
        return rows
    except GrowWowError as exc:
        error = str(exc)
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise
    finally:
        counts = context.tally.as_dict()
        error = stored_error(error)
        with engine.begin() as connection:
            connection.execute(
                update(etl_runs)
                .where(etl_runs.c.run_id == run_id)
                .values(
                    status=status,
                    rows=rows,
                    error=error,
                    counts=counts or None,
                    finished_at=dt.datetime.now(dt.UTC),
                )
            )
        seconds = time.perf_counter() - started
        if counts:
            log.warning("%s (shard %s): upstream problems: %s", name, context.shard, describe_counts(counts))
        if status == "ok":
            log.info("%s (shard %s) ok: %s rows in %.1f s", name, context.shard, rows, seconds)
        else:
            log.error("%s (shard %s) failed after %.1f s: %s", name, context.shard, seconds, error)


ERROR_CHARS = 500  # what a run's record keeps of its reason: its first line says what and where


def stored_error(error: str | None) -> str | None:
    """A failure's reason as a run's record keeps it: printable (PostgreSQL refuses NUL; control bytes
    garble a terminal) and at most ERROR_CHARS, however much a file or an upstream put in it."""
    return clean_text(error[: ERROR_CHARS * 4], ERROR_CHARS)[0] if error is not None else None


def describe_counts(counts: dict[str, int]) -> str:
    """A run's counts of what went wrong upstream, for people: '3 gaps, 2 quarantined'."""
    return ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in counts.items())


def as_click_error(exc: GrowWowError) -> click.ClickException:
    """One line on stderr and the error's exit status (1 unless it says otherwise)."""
    error = click.ClickException(stored_error(str(exc)))  # one line, not a file's 10 MB
    error.exit_code = getattr(exc, "exit_code", 1)
    return error


def mark_interrupted(connection: Connection, name: str, shard: str | None, error: str) -> int:
    """Mark the step's runs on the shard that are still marked running as failed with `error` (the caller
    holds the lock, so none of them is alive); how many there were."""
    return connection.execute(
        update(etl_runs)
        .where(
            etl_runs.c.step == name,
            etl_runs.c.status == "running",
            etl_runs.c.shard.is_not_distinct_from(shard),
        )
        .values(status="failed", error=stored_error(error), finished_at=dt.datetime.now(dt.UTC))
    ).rowcount


def record_death(connection: Connection, name: str, shard: str | None, error: str) -> None:
    """A step's process died with `error`: its run marked running becomes failed, or, when it died before
    its run was recorded (while preparing), a failed run is recorded, so that the night says so."""
    if not mark_interrupted(connection, name, shard, error):
        now = dt.datetime.now(dt.UTC)
        connection.execute(
            insert(etl_runs).values(
                step=name,
                shard=shard,
                started_at=now,
                finished_at=now,
                status="failed",
                error=stored_error(error),
            )
        )


class OneLineErrors:
    """For click commands and groups: print the errors a user can act on as one line, no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GrowWowError as exc:
            raise as_click_error(exc) from None


class Command(OneLineErrors, click.Command):
    """A step's own command line."""


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def allocate_big_blocks_apart() -> None:
    """Have glibc give every block of 128 KiB or more its own mapping, handed back to the system when
    freed. By default the threshold rises to the largest block freed so far (up to 32 MiB), so after the
    extract the detection's arrays come from a heap that never shrinks. Measured with `etl run` on 1,000
    sensors × 75 days: 1,529 MB peak without it, 1,266 MB with it; on a year, 1,788 → 1,704 MB."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: its allocator has its own ways
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 128 * 1024)


def prepare(**overrides) -> tuple[EtlSettings, Engine]:
    """Settings, logging and an engine on a database whose schema is current; big blocks allocated apart
    (see allocate_big_blocks_apart)."""
    from core.db import ensure_schema, make_engine
    from core.logs import configure_logging
    from etl.settings import load_settings

    allocate_big_blocks_apart()
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    configure_logging(settings)
    engine = make_engine(settings)
    ensure_schema(engine)
    return settings, engine


def run_alone(name: str, step: Step, shard: Shard, **overrides) -> int:
    """Run one step from its own command: under the lock of its shard, recorded in etl_runs."""
    settings, engine = prepare(**overrides)
    context = StepContext(settings, engine, shard, settings.now())
    with etl_lock(engine, shard):
        rows = run_recorded(name, step, context)
    click.echo(f"{name} (shard {shard}): {rows:,} rows written")
    return rows


def shard_option(function):
    return click.option(
        "--shard",
        type=ShardParam(),
        default="1/1",
        show_default=True,
        help="do the part i of n: stations with their sensors, split by a stable hash",
    )(function)


def step_command(name: str, step: Step, doc: str) -> click.Command:
    """The command line of a step that takes only --shard: `python -m etl.<name> [--shard i/n]`."""

    @click.command(name, cls=Command, help=doc, context_settings={"help_option_names": ["-h", "--help"]})
    @shard_option
    def main(shard) -> None:
        run_alone(name, step, shard)

    return main

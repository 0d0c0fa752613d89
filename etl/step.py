"""What every ETL step shares: its context, the lock against overlapping runs, and its record in etl_runs.

A step is a function `run(context) -> rows written`. Run on its own (`python -m etl.<step>`) or by the
runner (`python -m etl run`), it holds the lock of its shard, so a second run started meanwhile exits at
once, and it leaves one etl_runs row: started, finished, rows, status and the error in one line.
"""

from __future__ import annotations

import datetime as dt
import fcntl
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

import click
from sqlalchemy import Engine, insert, text, update

from core.errors import GrowWowError
from core.schema import etl_runs
from etl.settings import EtlSettings
from etl.shard import Shard, ShardParam

log = logging.getLogger(__name__)


class AlreadyRunning(GrowWowError):
    """Another run holds the lock of this shard."""

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
    """Hold the lock of a shard for the duration: a PostgreSQL advisory lock, or a lock file for SQLite."""
    name = f"grow-wow etl {shard}"
    if engine.dialect.name == "postgresql":
        key = zlib.crc32(name.encode())
        connection = engine.connect()
        try:
            if not connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}):
                raise AlreadyRunning(f"another GROW–WOW run holds the lock of shard {shard}; not starting")
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        finally:
            connection.close()
        return
    # The lock file sits beside the database file it guards; an in-memory database has no file, so its
    # lock goes to the system's temporary folder.
    database = engine.url.database
    suffix = f".etl-{str(shard).replace('/', 'of')}.lock"
    in_memory = not database or database == ":memory:"
    folder = Path(tempfile.gettempdir())
    lock_path = folder / f"grow-wow-memory{suffix}" if in_memory else Path(database + suffix)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(
                f"another GROW–WOW run holds the lock of shard {shard}; not starting"
            ) from None
        handle.write(f"{dt.datetime.now(dt.UTC).isoformat()}\n")
        handle.flush()
        yield


def run_recorded(name: str, step: Step, context: StepContext) -> int:
    """Run a step (the caller holds the lock), recording it in etl_runs; re-raise its failure."""
    engine = context.engine
    shard = None if context.shard.whole else str(context.shard)
    with engine.begin() as connection:
        # A run still marked running can only be one that was killed: we hold the lock.
        connection.execute(
            update(etl_runs)
            .where(
                etl_runs.c.step == name,
                etl_runs.c.status == "running",
                etl_runs.c.shard.is_not_distinct_from(shard),
            )
            .values(
                status="failed", error="interrupted (killed or crashed)", finished_at=dt.datetime.now(dt.UTC)
            )
        )
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


def describe_counts(counts: dict[str, int]) -> str:
    """A run's counts of what went wrong upstream, for people: '3 gaps, 2 quarantined'."""
    return ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in counts.items())


def as_click_error(exc: GrowWowError) -> click.ClickException:
    """One line on stderr and the error's exit status (1 unless it says otherwise)."""
    error = click.ClickException(str(exc))
    error.exit_code = getattr(exc, "exit_code", 1)
    return error


class OneLineErrors:
    """For click commands and groups: print the errors a user can act on as one line, no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GrowWowError as exc:
            raise as_click_error(exc) from None


class Command(OneLineErrors, click.Command):
    """A step's own command line."""


def prepare(**overrides) -> tuple[EtlSettings, Engine]:
    """Settings, logging and an engine on a database whose schema is current."""
    from core.db import ensure_schema, make_engine
    from core.logs import configure_logging
    from etl.settings import load_settings

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
        help="do the part i of n: sensors split by a stable hash",
    )(function)


def step_command(name: str, step: Step, doc: str) -> click.Command:
    """The command line of a step that takes only --shard: `python -m etl.<name> [--shard i/n]`."""

    @click.command(name, cls=Command, help=doc, context_settings={"help_option_names": ["-h", "--help"]})
    @shard_option
    def main(shard) -> None:
        run_alone(name, step, shard)

    return main

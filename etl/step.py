"""What a step is: a function `run(context) -> rows written` (or an outcome with its `rows`), and the
context it runs in: settings, engine, its shard, the run's "now", and the tally of what went wrong upstream.
Run on its own (`etl.commands`) or by the runner (`etl.runner`), it holds its shard's lock (`etl.locks`)
and leaves one etl_runs row (`etl.runs`).
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from core.errors import GrowWowError
from etl.settings import EtlSettings
from etl.shard import Shard


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


@dataclass(frozen=True)
class Imported:
    """What an import did: the rows it wrote, and one line saying what it read, wrote and set aside."""

    rows: int
    said: str

    def __str__(self) -> str:
        return self.said


Step = Callable[[StepContext], int | Imported]  # rows written, or an import's outcome

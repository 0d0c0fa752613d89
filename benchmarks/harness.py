"""What every benchmark shares, so that each says only what it measures: its size options, its scratch
places, its timings, its table and the one line of JSON it ends with.

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import harness

    args = harness.options(__doc__, rows=(1000, "rows to load"), repeat=3).parse_args()
    rounds, _ = harness.rounds(args.repeat, work)  # the seconds of each round
    seconds = harness.median(rounds)
    harness.table([("ours", args.rows, seconds)], {"run": "<20", "rows": ">8,", "seconds": ">8.2f"})
    harness.finish({"rows_per_s": round(args.rows / seconds)})  # always the last line

A benchmark that uses the database also takes --database-url (default: DATABASE_URL, else the local
PostgreSQL), where benchmarks/scratch.py makes its scratch schemas.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

ROOT = Path(__file__).resolve().parent.parent
LOCAL_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
T = TypeVar("T")

# --- options ------------------------------------------------------------------------------------------------


def database_url(text: str) -> URL:
    """The option's text as a SQLAlchemy URL, read as the project reads DATABASE_URL."""
    from core.settings import parse_database_url  # only when asked: not every benchmark has a database

    try:
        return parse_database_url(text)
    except Exception as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def options(doc: str, database: bool = True, **sizes: Any) -> argparse.ArgumentParser:
    """The benchmark's parser, described by its docstring's first paragraph: `--name` for every
    `name=default` or `name=(default, help)` (underscores as dashes, typed as the default; False makes a
    flag), and --database-url where `database`. Add any other option, then call parse_args()."""
    parser = argparse.ArgumentParser(description=" ".join(doc.split("\n\n")[0].split()))
    for name, value in sizes.items():
        default, help_text = value if isinstance(value, tuple) else (value, None)
        flag = f"--{name.replace('_', '-')}"
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=help_text)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=help_text)
    if database:
        parser.add_argument(
            "--database-url",
            type=database_url,
            default=os.environ.get("DATABASE_URL", LOCAL_DATABASE),
            help="where the scratch schemas go (default: DATABASE_URL, else the local PostgreSQL)",
        )
    return parser


# --- scratch places -----------------------------------------------------------------------------------------


def scratch_folder(name: str) -> tempfile.TemporaryDirectory:
    """`with harness.scratch_folder("fetch") as folder:` a folder var/bench_fetch_…, removed afterwards."""
    (ROOT / "var").mkdir(exist_ok=True)
    return tempfile.TemporaryDirectory(dir=ROOT / "var", prefix=f"bench_{name}_")


def free_port() -> int:
    """A loopback port no one listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def simulator(folder: str | Path) -> Iterator[str]:
    """The network generated in `folder`, served by `python -m devtools.simulator serve` in its own
    process on a free loopback port for the block; gives the simulator's base URL."""
    import requests

    port = free_port()
    command = [sys.executable, "-m", "devtools.simulator", "serve", "--data", str(folder)]
    command += ["--port", str(port), "--quiet"]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                requests.get(f"{url}/sim/health", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            raise SystemExit("the simulator did not start")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


# --- timings ------------------------------------------------------------------------------------------------


def timed(work: Callable[[], T]) -> tuple[float, T]:
    """The seconds `work()` took, and what it returned."""
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def rounds(times: int, work: Callable[[], T]) -> tuple[list[float], T]:
    """`work()` run `times` times: the seconds of each round, and what the last one returned."""
    seconds = []
    for _ in range(times):
        took, result = timed(work)
        seconds.append(took)
    return seconds, result


def median(values: Iterable[float]) -> float:
    """The median: what a benchmark quotes of its rounds."""
    return statistics.median(values)


def medians(figures: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each figure's median over rounds that each give the same figures."""
    return {key: statistics.median(one[key] for one in figures) for key in figures[0]}


# --- what it prints -----------------------------------------------------------------------------------------


def table(rows: Iterable[Sequence | str], columns: Mapping[str, str]) -> None:
    """A header line, then a line a row: `columns` maps each heading to its cells' format spec ("<40",
    ">10,", ">8.2f"), cells one space apart. A text or None cell takes only its column's alignment and
    width; a shorter row stops early; cells past the last column follow as they are; a row that is text
    is a line of its own, printed as it is."""
    layouts = [re.match(r"[<>^]?\d*", spec)[0] for spec in columns.values()]
    print(" ".join(format(heading, layout) for heading, layout in zip(columns, layouts)).rstrip())
    for row in rows:
        if isinstance(row, str):
            print(row)
            continue
        cells = [_cell(value, spec, layout) for value, spec, layout in zip(row, columns.values(), layouts)]
        print(" ".join([*cells, *map(str, row[len(columns) :])]).rstrip())


def _cell(value, spec: str, layout: str) -> str:
    if value is None or isinstance(value, str):
        return format("" if value is None else value, layout)
    return format(value, spec)


def finish(figures: Mapping[str, Any]) -> None:
    """The run's figures, under the keys its issue names, as one line of JSON: the benchmark's last line,
    the one scripts read."""
    print(json.dumps(figures), flush=True)

"""The whole nightly job, `python -m etl run`, all five steps, timed end to end in its own process.

1. Backfill: a network of `--backfill-sensors` × `--backfill-days`, stored and checked from an empty
   database by one `python -m etl run`: its seconds and the peak resident memory of that process.
2. Nightly: a network of `--sensors` whose history up to yesterday is loaded first (untimed, by the same
   command); the simulated present moves on one day and `python -m etl run` is timed, each step's seconds
   as the runner reports them.
3. The same night as `--shards` shard processes (`python -m etl run --shard i/n`) started at once on a
   second copy of the database, checked equal to (2), table by table.

The simulator serves in its own process; the database is a scratch schema of DATABASE_URL (default: the
local PostgreSQL), dropped afterwards. Networks are generated under var/ and removed afterwards.

    python benchmarks/bench_nightly.py --sensors 6500 --history-days 14 --backfill-sensors 1000 \\
        --backfill-days 365 --shards 4
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import requests
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness
from benchmarks.harness import ROOT
from benchmarks.scratch import Scratch
from core.schema import readings
from tests.factories import DATA_TABLES, assert_same_database, etl_env, snapshot

END = dt.datetime(2019, 7, 1, tzinfo=dt.UTC)
STEP_LINE = re.compile(r"^(\w+)\s+([\d,]+) rows written\s+([\d.]+) s$")


def etl_run(url: str, simulator: str, now: dt.datetime, shard: str | None = None) -> subprocess.Popen:
    """Start `python -m etl run` against the simulator at `now`, in its own process."""
    env = etl_env(url, simulator, now, LOG_LEVEL="WARNING")
    command = [sys.executable, "-m", "etl", "run", *(["--shard", shard] if shard else [])]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def generate(folder: str, sensors: int, days: int, seed: int, end: dt.datetime) -> None:
    """The network, generated in a process of its own: a child's peak resident memory as wait4 reports
    it starts from its parent's peak (Linux copies the high-water mark at fork and exec), so this process
    must stay small for the figure to be the run's own."""
    command = [sys.executable, "-m", "devtools.simulator", "generate", "--out", folder]
    command += ["--sensors", str(sensors), "--days", str(days), "--seed", str(seed), "--end", end.isoformat()]
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def run_measured(url: str, simulator: str, now: dt.datetime) -> tuple[dict[str, float], float, float]:
    """One `python -m etl run`: its steps' seconds, its wall seconds and its peak resident memory (MB)."""
    started = time.perf_counter()
    process = etl_run(url, simulator, now)
    # Read the pipes on threads while wait4 reaps the process and returns its own resource usage.
    output: dict[str, str] = {}
    readers = [
        threading.Thread(target=lambda name=name, pipe=pipe: output.__setitem__(name, pipe.read()))
        for name, pipe in (("out", process.stdout), ("err", process.stderr))
    ]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"python -m etl run failed ({process.returncode}):\n{output['err'][-3000:]}")
    steps = {}
    for line in output["out"].splitlines():
        match = STEP_LINE.match(line.strip())
        if match:
            steps[match[1]] = float(match[3])
    return steps, seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def set_clock(simulator: str, now: dt.datetime) -> None:
    requests.post(f"{simulator}/sim/clock", json={"now": now.isoformat()}, timeout=30).raise_for_status()


def reading_count(engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(readings))


def backfill(base, sensors: int, days: int) -> dict:
    with Scratch(base, "backfill") as scratch, harness.scratch_folder("nightly") as folder:
        generate(folder, sensors, days, 2019, END)
        with harness.simulator(folder) as simulator:
            set_clock(simulator, END)
            steps, seconds, peak = run_measured(scratch.url, simulator, END)
        return {
            "steps": steps,
            "seconds": seconds,
            "peak_mb": peak,
            "readings": reading_count(scratch.engine),
        }


def nightly(base, sensors: int, history_days: int, shards: int) -> dict:
    yesterday = END - dt.timedelta(days=1)
    with (
        Scratch(base, "nightly") as whole,
        Scratch(base, "nightly_shards") as sharded,
        harness.scratch_folder("nightly") as folder,
    ):
        generate(folder, sensors, history_days + 1, 2019, END)
        with harness.simulator(folder) as simulator:
            set_clock(simulator, yesterday)
            for scratch in (whole, sharded):  # history up to yesterday, untimed, the same in both
                run_measured(scratch.url, simulator, yesterday)
            before = reading_count(whole.engine)
            set_clock(simulator, END)
            steps, seconds, peak = run_measured(whole.url, simulator, END)
            new_readings = reading_count(whole.engine) - before

            started = time.perf_counter()
            processes = [etl_run(sharded.url, simulator, END, f"{i}/{shards}") for i in range(1, shards + 1)]
            failures = []
            for process in processes:
                _, err = process.communicate()
                if process.returncode != 0:
                    failures.append(
                        err.strip().splitlines()[-1] if err.strip() else f"exit {process.returncode}"
                    )
            shard_seconds = time.perf_counter() - started
        equal, differences = compare(whole.engine, sharded.engine)
        return {
            "steps": steps,
            "seconds": seconds,
            "peak_mb": peak,
            "new_readings": new_readings,
            "shard_seconds": shard_seconds,
            "shard_failures": failures,
            "shards_equal": equal and not failures,
            "differences": differences,
        }


def compare(left_engine, right_engine) -> tuple[bool, list[str]]:
    """Are the two databases the same, table by table (bookkeeping columns aside)? The readings are
    compared sensor by sensor as a count and a sum of each reading's hash, computed in the database:
    at 100,000 sensors their rows would not fit in this process."""
    others = tuple(table for table in DATA_TABLES if table is not readings)
    try:
        assert_same_database(snapshot(left_engine, others), snapshot(right_engine, others))
        assert_same_database(
            {"readings": readings_digest(left_engine)}, {"readings": readings_digest(right_engine)}
        )
    except AssertionError as difference:
        return False, [str(difference).splitlines()[0]]
    return True, []


def readings_digest(engine) -> pd.DataFrame:
    """Per sensor: how many readings, and the sum of a 64-bit hash of each one's time and values."""
    columns = [column.name for column in readings.columns if column.name != "sensor_id"]
    values = ", ".join(f"coalesce({name}::text, 'null')" for name in columns)  # concat_ws skips NULLs
    query = text(
        f"SELECT sensor_id, count(*) AS stored, sum(hashtextextended(concat_ws('|', {values}), 0)) AS hashed "
        "FROM readings GROUP BY sensor_id ORDER BY sensor_id"
    )
    with engine.connect() as connection:
        return pd.DataFrame(connection.execute(query).all(), columns=["sensor_id", "stored", "hashed"])


def main() -> None:
    args = harness.options(
        __doc__,
        sensors=(6500, "sensors of the nightly run"),
        history_days=(14, "days loaded before the nightly run"),
        shards=(4, "shard processes of the sharded night"),
        backfill_sensors=(1000, "sensors of the backfill"),
        backfill_days=(365, "days of history of the backfill"),
        skip_backfill=(False, "time only the nightly runs"),
        skip_nightly=(False, "time only the backfill"),
    ).parse_args()
    base = args.database_url

    # The backfill first: the nightly comparison reads both databases whole, and a run started after it
    # would be charged this process's peak (see generate).
    fill = None if args.skip_backfill else backfill(base, args.backfill_sensors, args.backfill_days)
    night = None if args.skip_nightly else nightly(base, args.sensors, args.history_days, args.shards)

    print(f"python -m etl run against the simulator, into {base.render_as_string()}")
    rows = []
    if fill is not None:
        label = f"backfill: {args.backfill_sensors:,} sensors × {args.backfill_days} days from empty"
        rows.append((label, fill["seconds"], fill["peak_mb"]))
        rows += [(f"  {step}", seconds) for step, seconds in fill["steps"].items()]
    if night is not None:
        label = f"nightly: {args.sensors:,} sensors, one new day ({night['new_readings']:,} readings)"
        rows.append((label, night["seconds"], night["peak_mb"]))
        rows += [(f"  {step}", seconds) for step, seconds in night["steps"].items()]
        rows.append((f"the same night as {args.shards} shard processes at once", night["shard_seconds"]))
    harness.table(rows, {"run": "<52", "seconds": ">8.1f", "peak RSS MB": ">12,.0f"})
    if night is not None:
        verdict = "equal to the whole run" if night["shards_equal"] else "NOT equal to the whole run"
        print(f"  {verdict}: " + ("; ".join(night["shard_failures"] + night["differences"]) or "every table"))
    detect_backfill = None if fill is None else fill["steps"].get("detect_anomalies")
    figures = {
        "nightly_seconds": None if night is None else round(night["seconds"], 1),
        "backfill_seconds": None if fill is None else round(fill["seconds"], 1),
        "backfill_peak_rss_mb": None if fill is None else round(fill["peak_mb"]),
        "shards_equal": None if night is None else night["shards_equal"],
        "detect_readings_per_s": round(fill["readings"] / detect_backfill) if detect_backfill else None,
    }
    if night is not None and "detect_anomalies" in night["steps"]:
        figures["nightly_detect_seconds"] = round(night["steps"]["detect_anomalies"], 1)
    harness.finish(figures)


if __name__ == "__main__":
    main()

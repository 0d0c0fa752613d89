"""Step 5 of 5, `python -m etl.analyse_anomalies`: one health row per sensor from its anomalies.

The 2019 meaning, kept: healthy = no anomaly ever; faulty = the last anomaly ends less than FAULTY_DAYS
(default 2) before the sensor's latest reading; recovered = anomalies, the last one FAULTY_DAYS or more
before the latest reading. New: silent = no reading for SILENT_DAYS (default 3) before now, whatever the
anomalies say: nobody can tell how a sensor is that says nothing. Each row also counts the anomalies by
kind and by variable, and says why in one line. Conditions (frozen soil, snow cover, a watering system:
`core.vocabulary.CONDITIONS`), and the days 2019's model flagged, are recorded beside the anomalies but
never decide a sensor's health. Neither do the anomalies an owner answered *not a fault*, those begun
before an owner's *fixed it*, or those inside a pause for maintenance (`core.answers`); while a pause
lasts, the sensor is `paused`.
"""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
from sqlalchemy import func, select

from core.answers import counts_for_health, paused_now
from core.db import latest_times
from core.load import bulk_upsert
from core.schema import anomalies, readings, sensor_health, sensors
from core.vocabulary import NOT_FAULTS, Health
from etl.commands import step_command
from etl.shard import owned_sensor_ids
from etl.step import StepContext

log = logging.getLogger(__name__)

NAME = "analyse_anomalies"
SUMMARY_COLUMNS = ["sensor_id", "variable", "kind", "end_at", "score", "explanation", "n"]
BATCH = 2_000  # sensors per query
HEALTH_COLUMNS = [
    "sensor_id",
    "status",
    "last_anomaly_at",
    "latest_reading_at",
    "days_since_anomaly",
    "counts",
    "reason",
]


def sensor_health_rows(
    sensor_ids: list[str],
    found: pd.DataFrame,
    latest_reading: dict,
    faulty_days: float,
    now: dt.datetime | None = None,
    silent_days: float | None = None,
    paused: frozenset[str] | set[str] = frozenset(),
) -> pd.DataFrame:
    """Health of each sensor from its anomalies (sensor_id, variable, kind, end_at, score, explanation;
    with a column `n`, each row stands for n anomalies of its variable and kind, itself the latest of
    them), and, given `now` and `silent_days`, from how long it has said nothing; the `paused` sensors
    are paused, whatever else they are."""
    if "n" not in found:
        found = found.assign(n=1)
    # Conditions (frozen soil, snow, a watering system) and 2019's history are shown with the anomalies
    # but are not faults.
    found = found[~found["kind"].isin([kind.value for kind in NOT_FAULTS])]
    # Grouped once for all sensors (a loop of per-sensor pandas calls took 1 ms a sensor).
    found = found.sort_values(["sensor_id", "end_at", "score"])  # lexsort: stable, ties keep their order
    last = found.groupby("sensor_id", sort=False).tail(1).set_index("sensor_id")
    totals = found.groupby("sensor_id")["n"].sum().to_dict()
    counts = {}
    for column in ("kind", "variable"):
        for (sensor, value), n in found.groupby(["sensor_id", column])["n"].sum().items():
            counts.setdefault(sensor, {"kind": {}, "variable": {}})[column][value] = int(n)
    last_at_of, explanation_of = last["end_at"].to_dict(), last["explanation"].to_dict()
    rows = []
    for sensor in sensor_ids:
        latest = latest_reading.get(sensor)
        if sensor not in last_at_of:
            no_counts = {"kind": {}, "variable": {}}
            rows.append((sensor, Health.HEALTHY.value, None, latest, None, no_counts, "no anomaly found"))
            continue
        last_at = last_at_of[sensor]
        since = max(0.0, (latest - last_at) / pd.Timedelta(days=1)) if latest is not None else 0.0
        status = Health.FAULTY if since < faulty_days else Health.RECOVERED
        others = int(totals[sensor]) - 1
        tail = f" (and {others} other anomal{'ies' if others > 1 else 'y'})" if others else ""
        if status is Health.FAULTY:
            reason = f"{explanation_of[sensor]}{tail}"
        else:
            reason = f"recovered {since:.1f} days ago; last: {explanation_of[sensor]}{tail}"
        rows.append((sensor, status.value, last_at, latest, round(since, 2), counts[sensor], reason))
    if now is not None and silent_days is not None:
        rows = [_silenced(row, pd.Timestamp(now), silent_days) for row in rows]
    rows = [_paused(row) if row[0] in paused else row for row in rows]
    frame = pd.DataFrame(rows, columns=HEALTH_COLUMNS)
    for column in ("last_anomaly_at", "latest_reading_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _silenced(row: tuple, now: pd.Timestamp, silent_days: float) -> tuple:
    """The row of a sensor whose latest reading is `silent_days` or more before now becomes silent; the
    reason keeps what it was before it went quiet."""
    sensor, status, last_at, latest, since, counts, reason = row
    if latest is None or now - latest < pd.Timedelta(days=silent_days):
        return row
    quiet = (now - latest) / pd.Timedelta(days=1)
    said = f"silent: no reading since {latest:%Y-%m-%d %H:%M} UTC ({quiet:.1f} days); before that: {status}"
    if status != Health.HEALTHY:
        said += f" ({reason})"
    return (sensor, Health.SILENT.value, last_at, latest, since, counts, said)


def _paused(row: tuple) -> tuple:
    sensor, status, last_at, latest, since, counts, reason = row
    said = f"paused for maintenance by its owner; before that: {status}"
    if status != Health.HEALTHY:
        said += f" ({reason})"
    return (sensor, Health.PAUSED.value, last_at, latest, since, counts, said)


def run(context: StepContext) -> int:
    with context.engine.connect() as connection:
        sensor_ids = owned_sensor_ids(connection, context.shard)
        latest = latest_times(connection, readings, sensors, "sensor_id")
        found = pd.concat(
            [
                _latest_of_each_kind(connection, sensor_ids[i : i + BATCH])
                for i in range(0, len(sensor_ids), BATCH)
            ]
            or [pd.DataFrame(columns=SUMMARY_COLUMNS)],
            ignore_index=True,
        )
        paused = paused_now(connection, context.now)
    found["end_at"] = pd.to_datetime(found["end_at"], utc=True)
    settings = context.settings
    health = sensor_health_rows(
        sensor_ids, found, latest, settings.faulty_days, context.now, settings.silent_days, paused
    )
    with context.engine.begin() as connection:
        written = bulk_upsert(connection, sensor_health, health)
    log.info("health of %d sensors: %s", len(health), health["status"].value_counts().to_dict())
    return written


def _latest_of_each_kind(connection, sensor_ids: list[str]) -> pd.DataFrame:
    """For each of these sensors, variable and kind: the latest anomaly, with how many there are. What
    health needs, in rows that do not grow with the anomalies' history."""
    group = [anomalies.c.sensor_id, anomalies.c.variable, anomalies.c.kind]
    ranked = (
        select(
            *group,
            anomalies.c.end_at,
            anomalies.c.score,
            anomalies.c.explanation,
            func.count().over(partition_by=group).label("n"),
            func.row_number()
            .over(partition_by=group, order_by=[anomalies.c.end_at.desc(), anomalies.c.score.desc()])
            .label("rank"),
        )
        .where(anomalies.c.sensor_id.in_(sensor_ids), counts_for_health())
        .subquery()
    )
    rows = connection.execute(
        select(*(ranked.c[name] for name in SUMMARY_COLUMNS)).where(ranked.c.rank == 1)
    ).all()
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


main = step_command(
    NAME,
    run,
    "Decide for every sensor: healthy, faulty or recovered, and why.",
)

if __name__ == "__main__":
    main(prog_name=f"python -m etl.{NAME}")

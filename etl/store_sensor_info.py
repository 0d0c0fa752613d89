"""Step 1 of 5, `python -m etl.store_sensor_info [GOOGLE_API_KEY]`: every GROW sensor into `sensors`.

Code, name and serial, owner, coordinates, first and last sample, days active, and an address. Only new
sensors, moved sensors and sensors still without an address are geocoded; the rest keep theirs. Records
that cannot be taken as they came (a code outside the id pattern, a name with NUL or too long) are
refused or repaired and quarantined. When the sensor list cannot be had but sensors are stored, the
night goes on with them.
"""

from __future__ import annotations

import datetime as dt
import logging

import click
import pandas as pd
from sqlalchemy import func, select

from core.load import bulk_upsert
from core.schema import sensors
from core.vocabulary import source_of
from etl.commands import Command, run_alone, shard_option
from etl.geo import haversine_km
from etl.quarantine import write_quarantine
from etl.shard import owned, sensor_sites
from etl.sources.address import Geocoder
from etl.sources.batch import SENSOR_COLUMNS
from etl.sources.http import SourceError
from etl.sources.sensor_sources import clients
from etl.step import StepContext

log = logging.getLogger(__name__)

NAME = "store_sensor_info"
MOVED_KM = 0.05  # a sensor moved further than this is geocoded again
BASE_COLUMNS = [*SENSOR_COLUMNS, "days_active"]
ADDRESS_COLUMNS = [
    "sensor_id",
    "address",
    "address_2019",
    "place",
    "country",
    "address_latitude",
    "address_longitude",
]


def days_active(first: pd.Series, last: pd.Series) -> pd.Series:
    """Whole days (24 h) from the first sample to the last, as 2019 counted them, so the marker panel and
    the 2019 routes say what they said then: a sensor is 0 days active on its first day (missing when
    either date is)."""
    span = (last - first).dt.days
    return span.where(first.notna() & last.notna()).astype("Int64")


def needs_address(fetched: pd.DataFrame, stored: pd.DataFrame) -> pd.Series:
    """New sensors, sensors moved more than MOVED_KM, and sensors with no address yet."""
    merged = fetched[["sensor_id", "latitude", "longitude"]].merge(stored, on="sensor_id", how="left")
    moved = haversine_km(
        merged["latitude"], merged["longitude"], merged["address_latitude"], merged["address_longitude"]
    )
    need = merged["address"].isna() | ~(moved <= MOVED_KM)  # NaN distance (never geocoded) counts as moved
    return pd.Series(need.to_numpy(), index=fetched.index)


def run(context: StepContext) -> int:
    with context.engine.connect() as connection:
        sites = sensor_sites(connection)  # who owns which sensor, as the step starts (etl.shard)
    listed, quarantined, failed = [], [], None
    for client in clients(context.settings):
        try:
            frame, refused = client.get_sensors()
        except SourceError as exc:
            # One failed call must not cost the night: the readings of the sensors we know can still be
            # fetched and checked, and the other sources' too; tomorrow's list brings the new ones.
            known = _stored_count(context, client.name)
            log.warning("%s; going on with the %d sensors of it already stored", exc, known)
            context.tally.add("sensor_list_unavailable")
            failed = failed or exc
            continue
        listed.append(frame)
        quarantined += refused
    if not listed:
        with context.engine.connect() as connection:
            if failed is not None and not connection.scalar(select(func.count()).select_from(sensors)):
                raise failed  # nothing listed and nothing stored: the night has nothing to work on
        return 0
    fetched = pd.concat(listed, ignore_index=True) if len(listed) > 1 else listed[0]
    return store_sensors(context, fetched, quarantined, sites)


def _stored_count(context: StepContext, source: str) -> int:
    """How many sensors of a source the database holds."""
    with context.engine.connect() as connection:
        stored = connection.execute(select(sensors.c.sensor_id)).scalars()
        return sum(1 for sensor_id in stored if source_of(sensor_id) == source)


def store_sensors(context: StepContext, fetched: pd.DataFrame, quarantined: list, sites: dict) -> int:
    """The shard's sensors with their days active, addresses for the new or moved ones, and the records
    set aside; `sites`: who owns which sensor (etl.shard). The import of files stores through here too."""

    fetched = fetched.loc[owned(context.shard, fetched["sensor_id"], sites)].reset_index(drop=True)
    quarantined = [
        q
        for q, mine in zip(quarantined, owned(context.shard, [str(q.entity_id) for q in quarantined], sites))
        if mine
    ]
    fetched["days_active"] = days_active(fetched["first_sample_at"], fetched["last_sample_at"])
    with context.engine.connect() as connection:
        stored = pd.DataFrame(
            connection.execute(
                select(
                    sensors.c.sensor_id,
                    sensors.c.address,
                    sensors.c.address_latitude,
                    sensors.c.address_longitude,
                )
            ).all(),
            columns=["sensor_id", "address", "address_latitude", "address_longitude"],
        )
    todo = fetched[needs_address(fetched, stored)]
    addresses = geocode(Geocoder(context.settings), todo)
    with context.engine.begin() as connection:
        written = bulk_upsert(connection, sensors, fetched[BASE_COLUMNS])
        if len(addresses):
            written += bulk_upsert(connection, sensors, addresses[ADDRESS_COLUMNS])
        context.tally.add("quarantined", write_quarantine(connection, quarantined, dt.datetime.now(dt.UTC)))
    log.info(
        "%d sensors, %d geocoded (%s)",
        len(fetched),
        len(addresses),
        "changes stored" if written else "no changes",
    )
    return written


def geocode(geocoder: Geocoder, todo: pd.DataFrame) -> pd.DataFrame:
    """Addresses for the sensors that need one; one that fails now is tried again next run."""
    rows, failed = [], 0
    for sensor in todo.itertuples():
        try:
            found = geocoder.reverse(round(sensor.latitude, 6), round(sensor.longitude, 6))
        except SourceError as exc:
            failed += 1
            if failed == 1:
                log.warning("%s; sensors left without an address are tried again next run", exc)
            continue
        rows.append(
            (
                sensor.sensor_id,
                found.address,
                found.address_2019,
                found.place,
                found.country,
                sensor.latitude,
                sensor.longitude,
            )
        )
    if failed:
        log.warning("geocoding failed for %d of %d sensors", failed, len(todo))
    return pd.DataFrame(rows, columns=ADDRESS_COLUMNS)


@click.command(NAME, cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("google_api_key", required=False)
@shard_option
def main(google_api_key: str | None, shard) -> None:
    """Store every sensor of the sources named (SENSOR_SOURCES: GROW_API_URL and GROW_API_KEY, or
    openSenseMap's OSEM_* settings), geocoding new or moved ones.

    GOOGLE_API_KEY, as in 2019, may be given here instead of in the environment (where it stays out
    of the process list); without any key the offline geocoder names place and country.
    """
    run_alone(NAME, run, shard, google_api_key=google_api_key)


if __name__ == "__main__":
    main(prog_name=f"python -m etl.{NAME}")

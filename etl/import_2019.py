"""`python -m etl import-2019 --from URL`: a 2019 deployment's database into ours, read only.

2019's ETL scripts made its tables (no DDL was kept; adeli321/grow-wow's main_scripts create them):
`all_sensor_info` (sensor_id, days_active, start_date, end_date, latitude, longitude, address, owner_id)
and one `grow_data_<sensor id>` table per sensor (sensor_id, datetime, soil_moisture, light,
air_temperature, battery_level), times without a zone in UTC. This reads them through the checks the
nightly steps use: a sensor without a usable id or position, an unreadable or future time, a value no
sensor can send, are set aside in `quarantine`; the rest is upserted, so a second import writes nothing.
Readings are read a table at a time in chunks of LOAD_BATCH_ROWS (bounded memory, a progress bar on a
terminal), and days detection has already checked are marked for a re-check.

2019's address (Google's components joined by spaces) is kept as both `address` and `address_2019`:
2019's `/grow_by_address` then finds the sensor as 2019 clients ask for it.

2019's `grow_anomalies` (grow_table and one of soil_date, light_date, air_date: the first reading of a
96-row chunk whose reconstruction error equalled the next chunk's) become anomalies of their own kind,
`2019-model`: shown with the sensor's history, never deciding its health today.

2019's station links (`grow_to_wow_mapping`: sensor_id, grow_lat, grow_lon, site_id, wow_lat, wow_lon,
distance in km) are kept for the sensors that have none yet, their stations added as not known to be live;
a link or a station already in our database is left as it is. Tonight's find_nearest_wow_live links each
sensor to its nearest live station within LINK_MAX_KM, as it does every night.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, event, inspect, select, text
from tqdm import tqdm

from core.errors import GrowWowError, SettingsError
from core.load import bulk_upsert
from core.schema import anomalies, is_id, sensor_wow, sensors, wow_sites
from core.settings import parse_database_url
from core.vocabulary import SENSOR_VARIABLES, AnomalyKind
from detection.detect import ANOMALY_COLUMNS
from etl.loaders import ReadingsLoader
from etl.quarantine import REFUSED, REPAIRED, Quarantined, clean_text, write_quarantine
from etl.sources.batch import TEXT_WIDTHS, checked_readings
from etl.step import Imported, StepContext
from etl.store_sensor_info import BASE_COLUMNS, days_active

log = logging.getLogger(__name__)

NAME = "import_2019"
SENSORS_SOURCE = "2019 sensors"
READINGS_SOURCE = "2019 readings"
SENSOR_TABLE = "all_sensor_info"
READINGS_TABLE = re.compile(r"grow_data_(.+)")
ANOMALIES_TABLE = "grow_anomalies"
DATE_COLUMNS = {"soil_date": "soil_moisture", "light_date": "light", "air_date": "air_temperature"}
CHUNK_2019 = pd.Timedelta(minutes=15) * 95  # a 96-row chunk, from its first reading to its last
LINKS_TABLE = "grow_to_wow_mapping"
EXPLANATION_2019 = "2019's model flagged this day: its reconstruction error equalled the next day's"


class Not2019(GrowWowError):
    """The database named is not a 2019 deployment's: nothing is imported."""


def _text(value) -> str:
    """A text cell as text; NULL (None or NaN) as empty."""
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value).strip()


def read_only(raw: str):
    """An engine on the 2019 database that cannot write to it (a SQLite file must exist: none is made)."""
    url = parse_database_url(raw)
    if url.get_backend_name() == "sqlite":
        if not url.database or not Path(url.database).is_file():
            raise Not2019(f"cannot read the 2019 database: no such file {url.database!r}")
        engine = create_engine(url)

        @event.listens_for(engine, "connect")
        def _query_only(dbapi_connection, _record):
            dbapi_connection.execute("PRAGMA query_only = ON")

        return engine
    options = f"{url.query.get('options', '')} -c default_transaction_read_only=on".strip()
    return create_engine(url.update_query_dict({"options": options}))


def sensor_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Quarantined]]:
    """`all_sensor_info` rows → our sensors (BASE_COLUMNS and the addresses); the unusable set aside."""
    rows, quarantined = [], []
    for record in frame.to_dict("records"):
        code = _text(record.get("sensor_id"))
        shown = {k: (None if pd.isna(v) else str(v)) for k, v in record.items()}
        if not is_id(code):
            quarantined.append(
                Quarantined(SENSORS_SOURCE, code[:64] or None, REFUSED, "no usable sensor id", shown)
            )
            continue
        latitude, longitude = (
            pd.to_numeric(record.get("latitude"), errors="coerce"),
            pd.to_numeric(record.get("longitude"), errors="coerce"),
        )
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):  # NaN fails both
            quarantined.append(Quarantined(SENSORS_SOURCE, code, REFUSED, "no position in range", shown))
            continue
        address, _ = clean_text(_text(record.get("address")) or None, 512)
        owner = _text(record.get("owner_id"))
        rows.append(
            {
                "sensor_id": code,
                "identifier": f"Grow.Thingful#{code}",
                "name": None,
                "serial_number": None,
                "owner_id": owner if is_id(owner) else None,
                "latitude": float(latitude),
                "longitude": float(longitude),
                "first_sample_at": record.get("start_date"),
                "last_sample_at": record.get("end_date"),
                "address": address or None,
                "address_2019": address or None,
            }
        )
    sensors_found = pd.DataFrame(rows, columns=[*BASE_COLUMNS[:-1], "address", "address_2019"])
    for column in ("first_sample_at", "last_sample_at"):
        sensors_found[column] = pd.to_datetime(sensors_found[column], utc=True, errors="coerce")
    sensors_found["days_active"] = days_active(
        sensors_found["first_sample_at"], sensors_found["last_sample_at"]
    )
    for column in ("identifier",):
        sensors_found[column] = sensors_found[column].str.slice(0, TEXT_WIDTHS[column])
    return sensors_found.drop_duplicates("sensor_id", keep="last").reset_index(drop=True), quarantined


def readings_of(chunk: pd.DataFrame, sensor_id: str, table: str, first_row: int, not_after, after=None):
    """One chunk of a `grow_data_*` table → our readings, checked; (frame, quarantined). `after`: the
    last time the chunks before held (a row at it again is one of the table's duplicates)."""
    frame = pd.DataFrame({"sensor_id": sensor_id}, index=chunk.index)
    for variable in SENSOR_VARIABLES:
        column = chunk[variable] if variable in chunk else pd.Series(np.nan, index=chunk.index)
        frame[variable] = pd.to_numeric(column, errors="coerce").astype(float)
    # SQLite gives the times as text, PostgreSQL as datetimes: either way, naive and in UTC.
    times = pd.to_datetime(chunk["datetime"], errors="coerce", utc=True, format="ISO8601").dt.as_unit("us")
    where = [f"{table} row {first_row + i + 1}" for i in range(len(chunk))]
    rows, quarantined = checked_readings(
        READINGS_SOURCE, frame.reset_index(drop=True), times.reset_index(drop=True), where, not_after
    )
    # Two rows of one time (2019 appended what it fetched): the first in the table's order is kept, so
    # every import settles on the same one.
    again = rows["ts"].duplicated().to_numpy()
    if after is not None:
        again |= (rows["ts"] <= after).to_numpy()
    for i in np.flatnonzero(again):
        why = "another row of this table at the same time: the first is kept"
        record = f"{table} at {rows['ts'].iat[i]}"
        quarantined.append(Quarantined(READINGS_SOURCE, sensor_id, REFUSED, why, record))
    return rows[~again].reset_index(drop=True), quarantined


def _store_sensors(connection, found: pd.DataFrame) -> int:
    """New sensors whole; a sensor we already have keeps what the nightly runs know of it (name,
    geocoded address, dates) and only gains 2019's address, where it has none."""
    have = dict(connection.execute(select(sensors.c.sensor_id, sensors.c.address_2019)).all())
    new = found[~found["sensor_id"].isin(have)]
    gains = found["sensor_id"].map(lambda s: s in have and have[s] is None) & found["address_2019"].notna()
    written = bulk_upsert(connection, sensors, new) if len(new) else 0
    if gains.any():
        written += bulk_upsert(connection, sensors, found.loc[gains, ["sensor_id", "address_2019"]])
    return written


def anomaly_rows(frame: pd.DataFrame, known: set[str]) -> tuple[pd.DataFrame, list[Quarantined]]:
    """`grow_anomalies` rows → anomalies of kind 2019-model (ANOMALY_COLUMNS); a row of a sensor not
    imported, or with no date it can be read by, is set aside."""
    rows, quarantined = [], []
    for record in frame.to_dict("records"):
        shown = {k: (None if pd.isna(v) else str(v)) for k, v in record.items()}
        match = READINGS_TABLE.fullmatch(_text(record.get("grow_table")))
        sensor = match[1] if match else None
        if sensor not in known:
            why = f"{ANOMALIES_TABLE} row of no imported sensor"
            quarantined.append(Quarantined(SENSORS_SOURCE, (sensor or "")[:64] or None, REFUSED, why, shown))
            continue
        dated = 0
        for column, variable in DATE_COLUMNS.items():
            when = pd.to_datetime(record.get(column), utc=True, errors="coerce")
            if pd.isna(when):
                continue
            dated += 1
            rows.append(
                {
                    "sensor_id": sensor,
                    "variable": variable,
                    "kind": AnomalyKind.MODEL_2019.value,
                    "start_at": when,
                    "end_at": when + CHUNK_2019,
                    "score": None,
                    "detector": AnomalyKind.MODEL_2019.detector.value,
                    "explanation": EXPLANATION_2019,
                }
            )
        if not dated:
            quarantined.append(
                Quarantined(SENSORS_SOURCE, sensor, REFUSED, f"{ANOMALIES_TABLE} row without a date", shown)
            )
    return pd.DataFrame(rows, columns=ANOMALY_COLUMNS), quarantined


def link_rows(frame: pd.DataFrame, known: set[str]) -> tuple[pd.DataFrame, pd.DataFrame, list[Quarantined]]:
    """`grow_to_wow_mapping` rows → (stations, links); a row of a sensor not imported, or whose station
    has no usable id or position, is set aside."""
    sites, links, quarantined = [], [], []
    for record in frame.to_dict("records"):
        shown = {k: (None if pd.isna(v) else str(v)) for k, v in record.items()}
        sensor, site = _text(record.get("sensor_id")), _text(record.get("site_id"))
        latitude = pd.to_numeric(record.get("wow_lat"), errors="coerce")
        longitude = pd.to_numeric(record.get("wow_lon"), errors="coerce")
        distance = pd.to_numeric(record.get("distance"), errors="coerce")
        if sensor not in known:
            why = f"{LINKS_TABLE} row of no imported sensor"
        elif not (is_id(site) and len(site) <= 36):
            why = "no usable station id"
        elif not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            why = "station position not in range"
        else:
            sites.append({"site_id": site, "latitude": float(latitude), "longitude": float(longitude)})
            links.append(
                {
                    "sensor_id": sensor,
                    "site_id": site,
                    "distance_km": float(distance) if distance >= 0 else None,
                }
            )
            continue
        quarantined.append(Quarantined(SENSORS_SOURCE, sensor[:64] or None, REFUSED, why, shown))
    sites_found = pd.DataFrame(sites, columns=["site_id", "latitude", "longitude"]).drop_duplicates("site_id")
    return sites_found, pd.DataFrame(links, columns=["sensor_id", "site_id", "distance_km"]), quarantined


def _new_links(connection, sites: pd.DataFrame, links: pd.DataFrame) -> int:
    """Store the stations we do not have (not known to be live) and the links of sensors without one."""
    have_sites = set(connection.execute(select(wow_sites.c.site_id)).scalars())
    linked = set(connection.execute(select(sensor_wow.c.sensor_id)).scalars())
    new_sites = sites[~sites["site_id"].isin(have_sites)].assign(is_live=False)
    new_links = links[~links["sensor_id"].isin(linked)].drop_duplicates("sensor_id", keep="last")
    written = bulk_upsert(connection, wow_sites, new_sites) if len(new_sites) else 0
    return written + (bulk_upsert(connection, sensor_wow, new_links) if len(new_links) else 0)


def run(context: StepContext, source_url: str) -> Imported:
    """Import the 2019 database at `source_url`."""
    try:
        source = read_only(source_url)
    except SettingsError as exc:
        raise Not2019(f"the 2019 database URL: {str(exc).replace('DATABASE_URL', 'it')}") from None
    try:
        tables = inspect(source).get_table_names()
    except Exception as exc:  # a URL that leads nowhere: say so in one line
        raise Not2019(f"cannot read the 2019 database: {str(exc).splitlines()[0]}") from None
    if SENSOR_TABLE not in tables:
        raise Not2019(f"not a 2019 database: it has no {SENSOR_TABLE} table")
    not_after = context.now + dt.timedelta(hours=context.settings.future_tolerance_hours)
    with source.connect() as connection:
        listed = pd.read_sql(text(f"SELECT * FROM {SENSOR_TABLE}"), connection)
    found, quarantined = sensor_rows(listed)
    with context.engine.begin() as connection:
        written = _store_sensors(connection, found)
    known = set(found["sensor_id"])
    readings_read, rows_set_aside = 0, []
    quote = source.dialect.identifier_preparer.quote
    reading_tables = sorted(t for t in tables if READINGS_TABLE.fullmatch(t))
    with ReadingsLoader.on_stored(context) as loader:
        for table in tqdm(reading_tables, desc="2019 tables", unit="table", disable=not context.progress):
            sensor_id = READINGS_TABLE.fullmatch(table)[1]
            if sensor_id not in known:
                why = f"{SENSOR_TABLE} lists no usable sensor {sensor_id}: its table is not imported"
                quarantined.append(Quarantined(READINGS_SOURCE, sensor_id[:64], REFUSED, why, table))
                continue
            # A server-side cursor: the rows come a chunk at a time, not the whole table at once; ordered
            # by time and values, so that of two rows of one time the same one comes first every time.
            order = ", ".join(["datetime", *SENSOR_VARIABLES])
            with source.connect().execution_options(stream_results=True) as connection:
                chunks = pd.read_sql(
                    text(f"SELECT * FROM {quote(table)} ORDER BY {order}"),
                    connection,
                    chunksize=context.settings.load_batch_rows,
                )
                first_row, last = 0, None
                for chunk in chunks:
                    rows, refused = readings_of(chunk, sensor_id, table, first_row, not_after, last)
                    if len(rows):
                        last = rows["ts"].max() if last is None else max(last, rows["ts"].max())
                    first_row += len(chunk)
                    readings_read += len(chunk)
                    rows_set_aside += [q.action for q in refused]
                    loader.add(rows, refused)  # the records go in with their rows' transaction
    found_anomalies = pd.DataFrame(columns=ANOMALY_COLUMNS)
    if ANOMALIES_TABLE in tables:
        with source.connect() as connection:
            flagged = pd.read_sql(text(f"SELECT * FROM {ANOMALIES_TABLE}"), connection)
        found_anomalies, refused = anomaly_rows(flagged, known)
        quarantined += refused
    sites, links = pd.DataFrame(columns=["site_id"]), pd.DataFrame(columns=["sensor_id"])
    if LINKS_TABLE in tables:
        with source.connect() as connection:
            mapped = pd.read_sql(text(f"SELECT * FROM {LINKS_TABLE}"), connection)
        sites, links, refused = link_rows(mapped, known)
        quarantined += refused
    with context.engine.begin() as connection:
        links_written = _new_links(connection, sites, links) if len(links) else 0
        anomalies_written = bulk_upsert(connection, anomalies, found_anomalies) if len(found_anomalies) else 0
        write_quarantine(connection, quarantined, dt.datetime.now(dt.UTC))  # sensors, tables, anomaly rows
    refused = sum(q.action == REFUSED for q in quarantined) + rows_set_aside.count(REFUSED)
    repaired = sum(q.action == REPAIRED for q in quarantined) + rows_set_aside.count(REPAIRED)
    said = (
        f"read {len(listed):,} sensors, {len(reading_tables):,} grow_data tables ({readings_read:,} readings)"
        f", {len(links):,} station links and {len(found_anomalies):,} days 2019's model flagged; wrote"
        f" {written:,} sensor rows, {loader.written:,} readings, {links_written:,} stations and links, and"
        f" {anomalies_written:,} anomalies; set aside {refused:,} refused and {repaired:,} repaired records"
        " (the quarantine table says why)"
    )
    context.tally.add("quarantined", len(quarantined))  # the rows' records the loader counts itself
    source.dispose()
    return Imported(written + loader.written + anomalies_written + links_written, said)

"""`python -m etl import-files DIR [--mapping FILE]`: a folder of a gardener's files (CSV with a mapping,
ISMN station files: see etl.sources.files) into the database, through the same checks, quarantine and
upsert as the nightly steps. Safe to repeat: rows already stored as they are are not written again, and
readings for days detection has checked mark them for a re-check, as late uploads do."""

from __future__ import annotations

import datetime as dt
import logging
from functools import partial
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from core.db import latest_times
from core.load import bulk_upsert
from core.schema import detection_state, readings, sensors
from etl.extract_all_grow_data import ReadingsLoader
from etl.quarantine import REFUSED, write_quarantine
from etl.sources.address import Geocoder
from etl.sources.files import read_folder
from etl.step import StepContext
from etl.store_sensor_info import ADDRESS_COLUMNS, BASE_COLUMNS, days_active, geocode, needs_address

log = logging.getLogger(__name__)

NAME = "import_files"


def run(context: StepContext, folder: Path, mapping: Path | None = None, summary: dict | None = None) -> int:
    """Read the folder and load it; what was read and set aside goes into `summary`, the records set
    aside into the run's counts too (as quarantined, like the nightly steps')."""
    not_after = context.now + dt.timedelta(hours=context.settings.future_tolerance_hours)
    found = read_folder(folder, mapping, not_after)
    refused = sum(q.action == REFUSED for q in found.quarantined)
    if summary is not None:
        summary.update(
            files=found.files,
            sensors=len(found.sensors),
            readings=len(found.readings),
            refused=refused,
            repaired=len(found.quarantined) - refused,
        )
    tally = context.tally
    listed = found.sensors.assign(
        days_active=days_active(found.sensors["first_sample_at"], found.sensors["last_sample_at"])
    )
    with context.engine.connect() as connection:
        stored = connection.execute(
            select(
                sensors.c.sensor_id,
                sensors.c.address,
                sensors.c.address_latitude,
                sensors.c.address_longitude,
            )
        ).all()
        newest = latest_times(connection, readings, sensors, "sensor_id")
        checked = dict(
            connection.execute(select(detection_state.c.sensor_id, detection_state.c.analysed_until)).all()
        )
    stored = pd.DataFrame(stored, columns=["sensor_id", "address", "address_latitude", "address_longitude"])
    addresses = geocode(Geocoder(context.settings), listed[needs_address(listed, stored)])
    with context.engine.begin() as connection:
        written = bulk_upsert(connection, sensors, listed[BASE_COLUMNS])
        if len(addresses):
            written += bulk_upsert(connection, sensors, addresses[ADDRESS_COLUMNS])
        tally.add("quarantined", write_quarantine(connection, found.quarantined, dt.datetime.now(dt.UTC)))
    with ReadingsLoader(context, newest, checked) as loader:
        loader.add(found.readings, [])
    log.info(
        "%s: %d files, %d sensors, %d readings read; %d readings written; %d records set aside",
        folder,
        found.files,
        len(found.sensors),
        len(found.readings),
        loader.written,
        len(found.quarantined),
    )
    return written + loader.written


def step(folder: Path, mapping: Path | None, summary: dict):
    """The import as a step of its own (recorded in etl_runs like the nightly ones)."""
    return partial(run, folder=folder, mapping=mapping, summary=summary)

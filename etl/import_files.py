"""`python -m etl import-files DIR [--mapping FILE]`: a folder of a gardener's files (CSV with a mapping,
ISMN station files: see etl.sources.files) into the database, through the same checks, quarantine and
upsert as the nightly steps, with the stretches ISMN flagged as imported history. Safe to repeat: rows
already stored as they are are not written again, and readings for days detection has checked mark them
for a re-check, as late uploads do."""

from __future__ import annotations

import datetime as dt
import logging
from functools import partial
from pathlib import Path

from etl.extract_all_grow_data import ReadingsLoader
from etl.history import store_history
from etl.quarantine import REFUSED
from etl.sources.files import read_folder
from etl.step import StepContext
from etl.store_sensor_info import store_sensors

log = logging.getLogger(__name__)

NAME = "import_files"


def run(context: StepContext, folder: Path, mapping: Path | None = None, summary: dict | None = None) -> int:
    """Read the folder and load it as the nightly steps store what they fetch; what was read and set
    aside goes into `summary`."""
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
            history=len(found.history),
        )
    written = store_sensors(context, found.sensors, found.quarantined, sites={})  # one whole shard
    with ReadingsLoader.on_stored(context) as loader:
        loader.add(found.readings, [])
    with context.engine.begin() as connection:
        written += store_history(connection, found.history)
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

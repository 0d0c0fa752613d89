"""`python -m etl import-files DIR [--mapping FILE]`: a folder of a gardener's files (CSV with a mapping,
ISMN station files: see etl.sources.files) into the database, through the same checks, quarantine and
upsert as the nightly steps, with the stretches ISMN flagged as imported history. Safe to repeat: rows
already stored as they are are not written again, and readings for days detection has checked mark them
for a re-check, as late uploads do."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from etl.loaders import ReadingsLoader, store_history
from etl.quarantine import REFUSED
from etl.sources.files import read_folder
from etl.step import Imported, StepContext
from etl.store_sensor_info import store_sensors

log = logging.getLogger(__name__)

NAME = "import_files"


def run(context: StepContext, folder: Path, mapping: Path | None = None) -> Imported:
    """Read the folder and load it as the nightly steps store what they fetch."""
    not_after = context.now + dt.timedelta(hours=context.settings.future_tolerance_hours)
    found = read_folder(folder, mapping, not_after)
    refused = sum(q.action == REFUSED for q in found.quarantined)
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
    written += loader.written
    history = f"; {len(found.history):,} stretches ISMN flagged kept as history" if len(found.history) else ""
    read = f"read {found.files} files: {len(found.sensors):,} sensors, {len(found.readings):,} readings"
    said = (
        f"{read}{history};"
        f" {written:,} rows written; set aside {refused:,} refused and {len(found.quarantined) - refused:,}"
        " repaired records (the quarantine table says why)"
    )
    return Imported(written, said)

"""The sensor sources a network is read from (SENSOR_SOURCES), each a module with the same small
interface, so the steps do not care which: `get_sensors()` (our sensors with owner and position, and the
records quarantined), `request_windows(codes, start, end)` (the requests a fetch takes, within the
source's limits), `iter_windows(windows)` (each request's `Batch`, in order), `state_key` (its name in
fetch_state) and `max_sensors` (per request). Sensor ids stay unique across sources: openSenseMap's carry
`osem:`, files' `file:`; GROW's stay as 2019 stored them (`core.vocabulary.source_of`).
"""

from __future__ import annotations

from etl.settings import EtlSettings
from etl.sources.files import FilesClient
from etl.sources.grow import GrowClient
from etl.sources.opensensemap import OpenSenseMapClient

CLIENTS = {"grow": GrowClient, "opensensemap": OpenSenseMapClient, "files": FilesClient}


def clients(settings: EtlSettings) -> list:
    """A client for each source the settings name, in their order."""
    return [CLIENTS[name](settings) for name in settings.sensor_sources.split(",")]


def client(name: str, settings: EtlSettings):
    return CLIENTS[name](settings)

"""The sensor sources a network is read from (SENSOR_SOURCES), each a module with the same small
interface, so the steps do not care which: `get_sensors()` (our sensors with owner and position, and the
records quarantined), `request_windows(codes, start, end)` (the requests a fetch takes, within the
source's limits), `iter_windows(windows)` (each request's `Batch`, in order), `state_key` (its name in
fetch_state) and `owns(sensor_id)`. Sensor ids stay unique across sources: openSenseMap's carry
`osem:`; GROW's stay as 2019 stored them.
"""

from __future__ import annotations

from etl.settings import EtlSettings
from etl.sources import opensensemap
from etl.sources.grow import GrowClient
from etl.sources.opensensemap import OpenSenseMapClient

CLIENTS = {"grow": GrowClient, "opensensemap": OpenSenseMapClient}


def source_of(sensor_id: str) -> str:
    """Which source a stored sensor came from, by its id."""
    return opensensemap.NAME if sensor_id.startswith(opensensemap.PREFIX) else "grow"


def clients(settings: EtlSettings) -> list:
    """A client for each source the settings name, in their order."""
    return [CLIENTS[name](settings) for name in settings.sensor_sources.split(",")]


def client(name: str, settings: EtlSettings):
    return CLIENTS[name](settings)

"""Sharding: n processes or machines share a step, each taking the sensors (or stations) of its shard.

A key belongs to shard i of n (1 ≤ i ≤ n) when crc32(key) mod n = i - 1: stable across runs, machines
and Python versions, so a sensor always lands in the same shard.

One rule says who owns a sensor, in every step: its key is the site id of the WOW station it is linked to
(sensor_wow), or its own id when it has none. A station and its sensors travel together, so detection
sees each sensor beside the same neighbours as a whole run. Each step reads the links once, as it starts
(`sensor_sites`), and keeps to them.

Only step 2 (find_nearest_wow_live) changes links, and it is still exact. Its shards start after every
shard finished step 1 (the runner waits), when the links are last night's, L0. A sensor's link is
written only by a shard that owns it by the links that shard read; so the first shard to change a
sensor's link is its owner under L0, and that shard read the link before anyone changed it. The owner
under L0 therefore always links the sensor; a shard that reads the new link later may link it again,
from the same sensor and the same live stations, to the same station (were WOW to answer the two shards
differently, the later write wins, as it does for the stations every shard stores). A sensor is looked
at twice at worst, never by no shard. Steps 3 to 5 start when every shard finished step 2: their links no
longer move, and every sensor has exactly one owner.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import click
import numpy as np
from sqlalchemy import Connection, select

from core.schema import sensor_wow, sensors


@dataclass(frozen=True)
class Shard:
    index: int = 1
    count: int = 1

    def __post_init__(self):
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 1 ≤ i ≤ n")

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        """'i/n' → Shard; None or '' → the whole (1/1)."""
        if not text:
            return cls()
        try:
            index, count = (int(part) for part in text.split("/"))
            return cls(index, count)
        except ValueError:
            raise ValueError(f"--shard {text!r}: expected i/n with 1 ≤ i ≤ n, e.g. 2/3") from None

    @property
    def whole(self) -> bool:
        return self.count == 1

    def contains(self, key: str) -> bool:
        return self.whole or zlib.crc32(str(key).encode()) % self.count == self.index - 1

    def owns(self, sensor_id: str, site_id: str | None = None) -> bool:
        """Is the sensor this shard's? It goes with its linked station (`site_id`), or alone without one."""
        return self.contains(sensor_id if site_id is None else site_id)

    def __str__(self) -> str:
        return "all" if self.whole else f"{self.index}/{self.count}"


def sensor_sites(connection: Connection) -> dict[str, str]:
    """The linked station of each sensor that has one, as ownership reads it: sensor id → site id."""
    linked = select(sensor_wow.c.sensor_id, sensor_wow.c.site_id).where(sensor_wow.c.site_id.is_not(None))
    return {sensor: str(site) for sensor, site in connection.execute(linked)}


def owned_sensor_ids(connection: Connection, shard: Shard, sites: dict[str, str] | None = None) -> list[str]:
    """The stored sensors this shard owns, by the links in `sites` (read now when not given)."""
    sites = sensor_sites(connection) if sites is None else sites
    stored = connection.execute(select(sensors.c.sensor_id)).scalars()
    return [sensor_id for sensor_id in stored if shard.owns(sensor_id, sites.get(sensor_id))]


def owned(shard: Shard, sensor_ids, sites: dict[str, str]) -> np.ndarray:
    """For each of `sensor_ids` (stored or not), is it this shard's by the links in `sites`?"""
    return np.array(
        [shard.owns(str(sensor_id), sites.get(sensor_id)) for sensor_id in sensor_ids], dtype=bool
    )


class ShardParam(click.ParamType):
    """`--shard i/n` on the command line."""

    name = "i/n"

    def convert(self, value, param, ctx):
        if isinstance(value, Shard):
            return value
        try:
            return Shard.parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)

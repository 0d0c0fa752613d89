"""The demo: a simulated network, served on loopback, run through the nightly pipeline into the database."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import Engine, func, select

from etl.schema import anomalies, readings, sensor_health, sensor_wow, sensors, wow_observations, wow_sites
from etl.settings import VAR_DIR, Settings

DEMO_DIR = VAR_DIR / "demo-network"


def ensure_network(sensors_count: int, days: int, seed: int, folder: Path = DEMO_DIR) -> Path:
    """Generate the demo network ending today at 00:00 UTC, unless today's is there already."""
    from etl.simulator.generate import generate

    end = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    wanted = {"sensors": sensors_count, "days": days, "seed": seed, "end": end.isoformat()}
    marker = folder / "demo.json"
    if not (marker.exists() and json.loads(marker.read_text()) == wanted):
        generate(folder, sensors_count, days, seed, end)
        marker.write_text(json.dumps(wanted))
    return folder


def serve_on_loopback(app, port: int = 0):
    """Serve a WSGI app from a thread on 127.0.0.1 (`port` 0: any free one); returns the server, whose
    `.port` is the port and `.shutdown()` stops it. For the demo and the tests, not for production."""
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def serve_in_background(folder: Path):
    """Start the simulator on a free loopback port; returns (base URL, server to shut down)."""
    from etl.simulator.network import Network
    from etl.simulator.server import create_app

    server = serve_on_loopback(create_app(Network(folder)))
    return f"http://127.0.0.1:{server.port}", server


def demo_settings(settings: Settings, url: str) -> Settings:
    return settings.model_copy(
        update={
            "grow_api_url": f"{url}/grow/api",
            "wow_api_url": f"{url}/wow/api",
            "grow_api_key": SecretStr("sim-grow-key"),
            "wow_api_key": SecretStr("sim-wow-key"),
            "google_api_key": None,
        }
    )


def summary(engine: Engine) -> list[str]:
    """What the database now holds, in a few lines a person can read."""
    with engine.connect() as connection:

        def count(table) -> int:
            return connection.scalar(select(func.count()).select_from(table))

        linked, distance = connection.execute(
            select(func.count(), func.avg(sensor_wow.c.distance_km)).where(sensor_wow.c.site_id.is_not(None))
        ).one()
        live = connection.scalar(select(func.count()).where(wow_sites.c.is_live))
        owners = connection.scalar(select(func.count(func.distinct(sensors.c.owner_id))))
        countries = connection.execute(
            select(sensors.c.country, func.count())
            .group_by(sensors.c.country)
            .order_by(func.count().desc())
            .limit(4)
        ).all()
        first, last = connection.execute(select(func.min(readings.c.ts), func.max(readings.c.ts))).one()
        statuses = dict(
            connection.execute(
                select(sensor_health.c.status, func.count()).group_by(sensor_health.c.status)
            ).all()
        )
        example = connection.execute(
            select(sensor_health.c.sensor_id, sensor_health.c.reason)
            .where(sensor_health.c.status == "faulty")
            .limit(1)
        ).first()
        detectors = dict(
            connection.execute(
                select(anomalies.c.detector, func.count()).group_by(anomalies.c.detector)
            ).all()
        )
        span = f"from {first:%Y-%m-%d} to {last:%Y-%m-%d %H:%M} UTC" if first else ""
        return [
            f"sensors        {count(sensors):>10,}  of {owners:,} owners, most in "
            + ", ".join(f"{country} ({n})" for country, n in countries),
            f"station links  {linked:>10,}  sensors linked to a live WOW station, {distance or 0:.1f} km away"
            " on average",
            f"WOW stations   {count(wow_sites):>10,}  known, {live:,} live",
            f"readings       {count(readings):>10,}  {span}",
            f"observations   {count(wow_observations):>10,}  from the linked stations",
            f"anomalies      {count(anomalies):>10,}  found by "
            + ", ".join(f"{detectors.get(d, 0):,} {d}" for d in ("rule", "model", "reference"))
            + " checks",
            "health         "
            + ", ".join(f"{statuses.get(s, 0):,} {s}" for s in ("healthy", "faulty", "recovered"))
            + (f"; e.g. {example.sensor_id}: {example.reason}" if example else ""),
        ]

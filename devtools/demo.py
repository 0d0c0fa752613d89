"""`make demo`, `python -m devtools.demo`: a simulated network, served on loopback, run through the nightly
pipeline into the embedded SQLite file under var/; then both web apps on loopback over it, with two logins
printed (Ctrl-C stops them).

The demo never takes its database or secrets from the shell: on a production host whose environment holds
DATABASE_URL and USE_AWS_SECRETS, it would otherwise migrate that database, load simulated sensors into it
and reset an admin's password. `--database-url` points it elsewhere on purpose."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path

import click
from pydantic import SecretStr
from sqlalchemy import Engine, func, select

from core.db import init_db, make_engine
from core.errors import GrowWowError
from core.logs import configure_logging
from core.schema import anomalies, readings, sensor_health, sensor_wow, sensors, wow_observations, wow_sites
from core.settings import DEFAULT_SQLITE_PATH, VAR_DIR
from core.vocabulary import Detector, Health
from devtools.mailbox import DEMO_MAIL_DIR, Mailbox
from devtools.simulator import osem
from devtools.web_demo import demo_accounts
from etl import notify_owners
from etl.runner import run_nightly
from etl.settings import EtlSettings, load_settings
from etl.shard import Shard
from etl.step import StepContext

DEMO_DIR = VAR_DIR / "demo-network"
DEMO_DATABASE = DEFAULT_SQLITE_PATH


def ensure_network(sensors_count: int, days: int, seed: int, folder: Path = DEMO_DIR) -> Path:
    """Generate the demo network ending today at 00:00 UTC, unless today's is there already."""
    from devtools.simulator.generate import generate

    end = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    wanted = {"sensors": sensors_count, "days": days, "seed": seed, "end": end.isoformat()}
    marker = folder / "demo.json"
    if not (marker.exists() and json.loads(marker.read_text()) == wanted):
        generate(folder, sensors_count, days, seed, end)
        marker.write_text(json.dumps(wanted))
    return folder


def serve_in_background(folder: Path):
    """Start the simulator on a free loopback port; returns (base URL, server to shut down)."""
    from devtools.loopback import serve_on_loopback
    from devtools.simulator.network import Network
    from devtools.simulator.server import create_app

    server = serve_on_loopback(create_app(Network(folder)))
    return f"http://127.0.0.1:{server.port}", server


def demo_settings(settings: EtlSettings, url: str, source: str = "grow") -> EtlSettings:
    """Every source pointed at the simulator, the sensors read from `source` (grow, or opensensemap)."""
    return settings.model_copy(
        update={
            "sensor_sources": source,
            "osem_grouptag": osem.GROUPTAG,  # the simulator's boxes
            "grow_api_url": f"{url}/grow/api",
            "osem_api_url": f"{url}/osem",
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
            .where(sensor_health.c.status == Health.FAULTY)
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
            + ", ".join(f"{detectors.get(d, 0):,} {d}" for d in Detector)
            + " checks",
            "health         "
            + ", ".join(f"{statuses.get(s, 0):,} {s}" for s in Health)
            + (f"; e.g. {example.sensor_id}: {example.reason}" if example else ""),
        ]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--sensors", "sensor_count", type=click.IntRange(1), default=200, show_default=True)
@click.option("--days", type=click.IntRange(1), default=30, show_default=True)
@click.option("--seed", type=int, default=2019, show_default=True)
@click.option("--port", type=int, default=5000, show_default=True, help="the dashboard's port on 127.0.0.1")
@click.option("--backend-port", type=int, default=8000, show_default=True, help="the back end's port")
@click.option("--no-serve", is_flag=True, help="stop after the pipeline; do not serve the web apps")
@click.option(
    "--database-url",
    help="the database to fill (default: var/grow_wow.sqlite, or var/grow_wow-opensensemap.sqlite); "
    "DATABASE_URL in the shell is never used",
)
@click.option("--source", type=click.Choice(["grow", "opensensemap"]), default="grow", show_default=True,
              help="read the simulated network as GROW serves it, or as openSenseMap boxes")  # fmt: skip
def main(
    sensor_count: int,
    days: int,
    seed: int,
    port: int,
    backend_port: int,
    no_serve: bool,
    database_url,
    source: str,
) -> None:
    """Generate a simulated network, serve it on loopback, run the nightly pipeline on it, then serve
    the back end and the dashboard over the database it filled."""
    default = (
        DEMO_DATABASE
        if source == "grow"
        else DEMO_DATABASE.with_name(f"{DEMO_DATABASE.stem}-{source}.sqlite")
    )
    settings = load_settings(database_url=database_url or f"sqlite:///{default}", use_aws_secrets=False)
    configure_logging(settings)
    folder = ensure_network(sensor_count, days, seed, DEMO_DIR)
    url, server = serve_in_background(folder)
    click.echo(f"simulated network {folder} ({sensor_count} sensors × {days} days) served at {url}")
    mailbox = Mailbox(DEMO_MAIL_DIR)
    # The demo's mail: to its own SMTP server on loopback, links signed with a key made for this run.
    mail = {
        **mailbox.settings(),
        "mail_link_secret": SecretStr(secrets.token_urlsafe(32)),
        "dashboard_url": f"http://127.0.0.1:{port}",
    }
    try:
        settings = demo_settings(settings, url, source).model_copy(update=mail)
        engine = make_engine(settings)
        click.echo(f"{settings.database_label}: {init_db(engine)}")
        for report in run_nightly(settings, engine, Shard()):
            click.echo(f"  {report.name:<24} {report.rows:>10,} rows written  {report.seconds:>6.1f} s")
        # The demo's accounts come after the night that found their faults: their alerts go now.
        logins = demo_accounts(engine)
        notify_owners.run(StepContext(settings, engine, Shard(), settings.now()))
    except GrowWowError as exc:
        mailbox.stop()
        raise click.ClickException(str(exc)) from None
    finally:
        server.shutdown()
    click.echo("\n".join(summary(engine)))
    click.echo(
        f"mail           {len(mailbox.messages()):>10,}  in {mailbox.folder}/ (.eml files: alerts, and the "
        "dashboard's sign-up and reset mails as they come)"
    )
    if no_serve:
        mailbox.stop()
        return
    from devtools.web_demo import serve_until_stopped

    web_mail = {**mail, "mail_link_secret": mail["mail_link_secret"].get_secret_value()}
    try:
        serve_until_stopped(settings, port, backend_port, logins, web_mail)
    finally:
        mailbox.stop()


if __name__ == "__main__":
    main(prog_name="python -m devtools.demo")

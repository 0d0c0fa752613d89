"""`python -m devtools.simulator generate | serve | plot`."""

from __future__ import annotations

import datetime as dt
import logging
import time

import click

from core.times import parse_utc
from devtools.simulator.generate import FAULT_KINDS
from devtools.simulator.server import FAILURES


def _utc(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    return parse_utc(value)


def _today() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# Misbehaviour fields served as `--<field>` options of `serve`: name → (type, default, help).
HOSTILE_OPTIONS = {
    "seed": (int, 0, "seed of the misbehaviour's draws"),
    "omit_sensor_rate": (click.FloatRange(0, 1), 0.0, "share of requested sensors left out of an answer"),
    "omit_variable_rate": (click.FloatRange(0, 1), 0.0, "share of a kept sensor's variables left out"),
    "future_rate": (click.FloatRange(0, 1), 0.0, "share of sensors/sites per answer stamped in the future"),
    "future_shift_days": (click.FloatRange(0), 30.0, "how far in the future, days"),
    "unrequested_rate": (click.FloatRange(0, 1), 0.0, "share of answers holding a code nobody asked for"),
    "poison_name_rate": (click.FloatRange(0, 1), 0.0, "share of sensor names with a NUL or 500 characters"),
    "bad_id_rate": (click.FloatRange(0, 1), 0.0, "share of sensors with an extra record of invalid Code"),
    "infinity_rate": (click.FloatRange(0, 1), 0.0, "share of values written Infinity, -Infinity, ±1e999"),
    "late_rate": (click.FloatRange(0, 1), 0.0, "share of (sensor, day) uploaded a day late"),
    "late_days": (click.FloatRange(0), 2.0, "how long after its end a late day is served, days"),
    "trickle_rate": (click.FloatRange(0, 1), 0.0, "share of answers sent a few bytes at a time"),
    "trickle_s": (click.FloatRange(0), 1.0, "pause between the pieces of a trickled answer, s"),
}


def _hostile_options(command):
    """Add an option per hostile misbehaviour field, and --wow-down."""
    command = click.option("--wow-down", is_flag=True, help="answer every WOW request 503")(command)
    for name, (kind, default, text) in reversed(HOSTILE_OPTIONS.items()):
        option = click.option(
            f"--{name.replace('_', '-')}", type=kind, default=default, show_default=True, help=text
        )
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """A simulated GROW network with WOW stations, served over the real APIs."""


@cli.command()
@click.option("--sensors", type=click.IntRange(1), default=50, show_default=True, help="GROW sensors")
@click.option("--days", type=click.IntRange(1), default=30, show_default=True, help="days of readings")
@click.option("--seed", type=int, default=2019, show_default=True, help="same seed, same network")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="folder to write")
@click.option("--end", help="end of the readings, ISO 8601 UTC [default: today 00:00 UTC]")
@click.option("--start", help="start of the readings instead, YYYY-MM-DD or ISO 8601 UTC (any season)")
@click.option("--stations", type=click.IntRange(1), help="WOW stations [default: 0.77 per sensor]")
def generate(
    sensors: int, days: int, seed: int, out: str, end: str | None, start: str | None, stations: int | None
) -> None:
    """Write a deterministic network: sensors, stations, readings and labelled faults."""
    from devtools.simulator.generate import generate as write_network

    if start and end:
        raise click.UsageError("give --start or --end, not both")
    try:
        first, last = _utc(start), _utc(end)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    started = time.perf_counter()
    if first is not None:
        summary = write_network(out, sensors, days, seed, stations=stations, start=first)
    else:
        summary = write_network(out, sensors, days, seed, last or _today(), stations)
    click.echo(
        f"{out}: {summary['sensors']:,} sensors, {summary['stations']:,} stations, "
        f"{summary['steps'] * summary['sensors']:,} sample times, {summary['faults']} faults "
        f"in {time.perf_counter() - started:.1f} s"
    )


@cli.command()
@click.option(
    "--data", type=click.Path(exists=True, file_okay=False), required=True, help="generated network"
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: any free one"
)
@click.option("--now", help="the simulated present, ISO 8601 UTC [default: now, or the network's end]")
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="share of failed answers",
)
@click.option(
    "--failures",
    default=",".join(FAILURES),
    show_default=True,
    help="kinds of failure to draw from: " + ", ".join(FAILURES),
)
@click.option(
    "--latency-ms", type=click.FloatRange(0), default=0.0, show_default=True, help="delay on every answer"
)
@click.option(
    "--retry-after", type=click.IntRange(0), default=1, show_default=True, help="Retry-After of a 429, s"
)
@click.option("--wow-bare-list", is_flag=True, help="answer WOW as a bare list instead of {'Object': [...]}")
@click.option("--grow-key", default="sim-grow-key", show_default=True)
@click.option("--wow-key", default="sim-wow-key", show_default=True)
@click.option("--google-key", default="AIzaSim-google-key", show_default=True)
@_hostile_options
@click.option("--quiet", is_flag=True, help="do not log every request")
def serve(
    data,
    host,
    port,
    now,
    error_rate,
    failures,
    latency_ms,
    retry_after,
    wow_bare_list,
    grow_key,
    wow_key,
    google_key,
    quiet,
    **hostile,
):
    """Serve the GROW API (/grow/api), the WOW API (/wow/api) and geocoding (/maps/api) from a network.

    Misbehaviour can be changed while serving: POST /sim/misbehaviour; GET /sim/poisoned lists what was
    poisoned."""
    from werkzeug.serving import make_server

    from devtools.simulator.network import Network
    from devtools.simulator.server import Keys, Misbehaviour, create_app

    misbehaviour = Misbehaviour(
        error_rate=error_rate,
        failures=tuple(f for f in failures.split(",") if f),
        latency_ms=latency_ms,
        retry_after_s=retry_after,
        **hostile,
    )
    app = create_app(Network(data), _utc(now), Keys(grow_key, wow_key, google_key), misbehaviour)
    app.config["WOW_BARE_LIST"] = wow_bare_list
    if quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(host, port, app, threaded=True)  # binds now, so the port said is the real one
    click.echo(
        f"serving {data} on http://{host}:{server.port} (GROW /grow/api, WOW /wow/api, geocoding /maps/api)"
    )
    server.serve_forever()


@cli.command()
@click.option(
    "--data", type=click.Path(exists=True, file_okay=False), required=True, help="generated network"
)
@click.option(
    "--out", type=click.Path(dir_okay=False), default="var/simulated_sensors.png", show_default=True
)
@click.option("--kind", type=click.Choice(FAULT_KINDS), help="the kind of fault to show [default: any]")
def plot(data: str, out: str, kind: str | None) -> None:
    """Draw one clean and one faulty sensor beside their nearest station (PNG), to judge the realism."""
    from devtools.simulator.plot import plot_sensors

    try:
        click.echo(plot_sensors(data, out, kind))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


if __name__ == "__main__":
    cli(prog_name="python -m devtools.simulator")

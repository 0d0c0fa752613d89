"""`python -m etl <command>`: the command line of the ETL and the database."""

from __future__ import annotations

import datetime as dt
from functools import partial
from pathlib import Path

import click
from pydantic import SecretStr

from core.db import (
    alembic_config,
    check_connection,
    current_revision,
    ensure_schema,
    head_revision,
    init_db,
    make_engine,
    table_counts,
)
from core.logs import configure_logging
from core.times import parse_utc
from etl.commands import OneLineErrors, allocate_big_blocks_apart, shard_option
from etl.runs import describe_counts
from etl.settings import load_settings


class Commands(OneLineErrors, click.Group):
    """`python -m etl`: every subcommand prints the errors a user can act on as one line."""


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """GROW–WOW: find faulty GROW soil sensors, with Met Office WOW stations as witnesses."""
    settings = load_settings()
    configure_logging(settings)
    ctx.obj = settings


@cli.command("init-db")
@click.pass_obj
def init_db_command(settings) -> None:
    """Create the database schema, or upgrade it to the newest revision (safe to repeat)."""
    engine = make_engine(settings)
    click.echo(f"{settings.database_label}: {init_db(engine)}")


@cli.command("status")
@click.pass_obj
def status_command(settings) -> None:
    """Print the database, its tables, the last run of each step and what upstream left undone; exit 1
    when the last nightly run failed or is older than STATUS_MAX_AGE_HOURS, or when more than
    STATUS_MAX_GAPS sensors and stations are held back or the last run quarantined more than
    STATUS_MAX_QUARANTINED records (for monitoring)."""
    from etl.runs import current_plan, latest_runs, nightly_verdict, upstream_report, upstream_verdict

    engine = make_engine(settings)
    check_connection(engine)
    with engine.connect() as connection:
        revision = current_revision(connection)
    click.echo(f"database  {settings.database_label}")
    click.echo(
        f"schema    revision {revision or 'none (run: python -m etl init-db)'}, newest {head_revision()}"
    )
    counts = table_counts(engine)
    for name, count in counts.items():
        click.echo(f"  {name:<18} {'missing' if count is None else f'{count:>12,} rows'}")
    every_plan = latest_runs(engine) if counts.get("etl_runs") is not None else []
    records = current_plan(every_plan)
    earlier = len(every_plan) - len(records)
    click.echo("last runs (UTC)" + (f", {earlier} of an earlier shard plan not shown" if earlier else ""))
    for r in records:
        took = f"{(r.finished_at - r.started_at).total_seconds():>7.1f} s" if r.finished_at else "      …  "
        click.echo(
            f"  {r.step:<22} {r.shard or 'all':<6} {r.started_at:%Y-%m-%d %H:%M}  {r.status:<8} {took} "
            f"{'' if r.rows is None else f'{r.rows:>10,} rows'}" + (f"  {r.error}" if r.error else "")
        )
        if r.counts:
            click.echo(f"      upstream: {describe_counts(r.counts)}")
    verdicts = []
    if counts.get("fetch_state") is not None:
        # The last nightly run began with its first step (or, run step by step, with the oldest).
        firsts = [r.started_at for r in records if r.step == records[0].step] if records else []
        since = min(firsts, default=None)
        report = upstream_report(engine, since)
        _echo_upstream(report)
        verdicts.append(upstream_verdict(report, settings.status_max_gaps, settings.status_max_quarantined))
    # Runs are stamped by the wall clock (ETL_NOW only moves the data's present), and so is this.
    now, max_age = dt.datetime.now(dt.UTC), dt.timedelta(hours=settings.status_max_age_hours)
    verdicts.insert(0, nightly_verdict(records, now, max_age))
    for _, verdict in verdicts:
        click.echo(verdict)
    if not all(healthy for healthy, _ in verdicts):
        raise SystemExit(1)


SHOWN = 10  # lines of each list `etl status` prints


def _echo_upstream(report) -> None:
    click.echo(f"held back: {len(report.held)} sensors and stations, asked again next run (gaps)")
    for source, entity, through, since, runs, reason in report.held[:SHOWN]:
        click.echo(
            f"  {source:<4} {entity:<20} fetched through {through:%Y-%m-%d %H:%M}, held since "
            f"{since:%Y-%m-%d} ({runs} runs): {reason}"
        )
    _more(len(report.held))
    click.echo(f"given up: {len(report.given_up)} spans never answered")
    for source, entity, start, end, reason, _ in report.given_up[:SHOWN]:
        click.echo(f"  {source:<4} {entity:<20} {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}: {reason}")
    _more(len(report.given_up))
    click.echo(f"quarantined by the last run: {report.quarantined_rows} records")
    for source, action, reason, rows, example in report.quarantined[:SHOWN]:
        click.echo(f"  {rows:>6,} {source:<16} {action:<8} {reason} (e.g. {example})")
    _more(len(report.quarantined))


def _more(n: int) -> None:
    if n > SHOWN:
        click.echo(f"  … and {n - SHOWN} more")


@cli.command("checks")
@click.pass_obj
def checks_command(settings) -> None:
    """List every check detection knows: detector, kinds, variable, whether it runs (DETECT_CHECKS),
    the conditions it stands down for, and its thresholds (DETECT_THRESHOLDS applied) with where each
    value comes from."""
    from detection.checks import CHECKS, FROST, SNOW, SOAKING, WATERING, Source, format_thresholds
    from etl.detect_anomalies import detection_config

    config = detection_config(settings)
    conditions = {"frost": FROST, "snow": SNOW, "watering": WATERING, "soaking": SOAKING}
    rows = [("check", "detector", "kinds", "variable", "runs", *conditions)]
    for name, check in CHECKS.items():
        marks = ["x" if condition in check.stands_down else "." for condition in conditions.values()]
        runs = "yes" if config.runs(name) else "no"
        rows.append((name, check.detector, ", ".join(check.kinds), check.variable, runs, *marks))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    click.echo("Checks, and the conditions each stands down for (x: its readings are blanked while it lasts)")
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    click.echo(f"{len(config.selected)} of {len(CHECKS)} checks run")
    sources = {source: chr(ord("a") + i) for i, source in enumerate(Source)}
    click.echo(
        "\nThresholds, each value's source in brackets: "
        + ", ".join(f"[{k}] {s}" for s, k in sources.items())
    )
    for name, check in CHECKS.items():
        shown = format_thresholds(config.thresholds[name]).split(" ")
        said = check.provenance()
        marked = [f"{value}[{sources[said[value.split('=')[0]]]}]" for value in shown]
        click.echo(f"  {name}: {' '.join(marked)}")


@cli.command("new-migration")
@click.argument("message")
@click.pass_obj
def new_migration_command(settings, message: str) -> None:
    """Draft a schema migration from the difference between core/schema.py and the database."""
    from alembic import command

    engine = make_engine(settings)
    check_connection(engine)
    with engine.begin() as connection:
        command.revision(alembic_config(connection), message=message, autogenerate=True)


def _utc_option(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return parse_utc(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time (e.g. 2019-05-01 or 2019-05-01T12:00)"
        ) from None


def _write(frame, out: str | None, what: str) -> None:
    from core.csv_cells import safe_frame  # names and text from upstream: no formulas in a spreadsheet

    if out:
        safe_frame(frame).to_csv(out, index=False)
        click.echo(f"{len(frame):,} {what} written to {out}")
    else:
        click.echo(safe_frame(frame).to_csv(index=False), nl=False)


def _sensor_ids(context, parameter, value):
    """An id typed on the command line is data, never a path: refused unless it is one (ID_PATTERN)."""
    from core.schema import ID_RULE, is_id

    for typed in [value] if isinstance(value, str) else value:
        if not is_id(typed):
            raise click.BadParameter(f"{typed!r} is not a sensor id ({ID_RULE})")
    return value


@cli.command("export-sensor")
@click.argument("sensor_id", callback=_sensor_ids)
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=7.0, show_default=True,
              help="days up to the sensor's latest reading")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="folder for ID_readings.csv, ID_anomalies.csv and ID.png")  # fmt: skip
@click.pass_obj
def export_sensor_command(settings, sensor_id: str, days: float, out: Path) -> None:
    """Export a sensor's readings and anomalies over its last days as CSV, and its charts as a PNG."""
    from etl.export import UnknownSensor, sensor_export, write_export

    engine = make_engine(settings)
    try:
        export = sensor_export(engine, sensor_id, days)
    except UnknownSensor as error:
        raise click.ClickException(str(error)) from None
    for path in write_export(export, out):
        click.echo(f"{path}")
    click.echo(
        f"{len(export.readings):,} readings and {len(export.anomalies):,} anomalies of {sensor_id}, "
        f"{export.start:%Y-%m-%d %H:%M} to {export.end:%Y-%m-%d %H:%M} UTC"
    )


@cli.command("archive")
@click.option("--to", "location", help="a folder or s3://bucket/prefix (default: ARCHIVE_DIR) to hold "
              "readings/day=…/source=…/readings.parquet and manifest.json")  # fmt: skip
@click.option("--verify", is_flag=True, help="only check every archived file against the manifest")
@click.pass_obj
def archive_command(settings, location: str | None, verify: bool) -> None:
    """Write each finished day's readings as Parquet (one file a day and source) with a manifest of
    checksums and the licence; a day changed since (late readings) is written again. With
    READINGS_KEEP_MONTHS, then drop from the database the older months, each once archived and verified."""
    from etl.archive import archive
    from etl.archive import verify as check

    if location:
        root = settings.open_archive(location)
    elif settings.archive_store is not None:
        root = settings.archive_store
    else:
        raise click.UsageError("where to? Set ARCHIVE_DIR or pass --to (a folder or s3://bucket/prefix)")

    if verify:
        wrong = check(root)
        for line in wrong:
            click.echo(line)
        if wrong:
            raise click.ClickException(f"{len(wrong)} archived files are not as the manifest says")
        click.echo(f"{root}: every archived file is as the manifest says")
        return
    from etl.archive import drop_archived_months

    engine = make_engine(settings)
    done = archive(engine, root, settings.now(), settings.archive_after_days, settings.archive_licence)
    click.echo(
        f"{root}: {done['written']} day files written, {done['kept']} unchanged, over {done['days']} days; "
        f"{done['months']} finished months written by sensor"
    )
    for line in drop_archived_months(engine, root, settings.now(), settings.readings_keep_months):
        click.echo(line)


@cli.command("export-labels")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="the CSV to write")  # fmt: skip
@click.pass_obj
def export_labels_command(settings, out: Path) -> None:
    """Write every owner's answer beside the anomaly it answers: labels from real gardens."""
    from core.answers import labels

    with make_engine(settings).connect() as connection:
        answered = labels(connection)
    _write(answered, str(out), "answers")


@cli.command("import-files")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="what the CSV files' columns are [default: FOLDER/mapping.json]")  # fmt: skip
@click.pass_obj
def import_files_command(settings, folder: Path, mapping: Path | None) -> None:
    """Load a folder of a gardener's files: CSV (one file per sensor, or with a sensor column) described
    by mapping.json, with positions in sensors.csv; and ISMN station files (*.stm). A bad row is set aside
    in the quarantine, never fatal; importing the same files again changes nothing."""
    from etl.commands import run_alone
    from etl.import_files import NAME, run
    from etl.shard import Shard

    run_alone(NAME, partial(run, folder=folder, mapping=mapping), Shard())


@cli.command("import-2019")
@click.option("--from", "source_url", required=True, envvar="IMPORT_2019_URL",
              help="the 2019 database's SQLAlchemy URL (or IMPORT_2019_URL, which keeps its password out "
                   "of the process list); it is only read")  # fmt: skip
@click.pass_obj
def import_2019_command(settings, source_url: str) -> None:
    """Bring a 2019 deployment's history over: its sensors (all_sensor_info), every grow_data_* table, its
    station links (grow_to_wow_mapping, for sensors without one) and the days its model flagged
    (grow_anomalies, as kind 2019-model), through the nightly steps' checks and quarantine. Safe to
    repeat: a second import writes nothing."""
    from etl.commands import run_alone
    from etl.import_2019 import NAME, run
    from etl.shard import Shard

    run_alone(NAME, partial(run, source_url=source_url), Shard())


@cli.command("fetch-sensors")
@click.option("--out", type=click.Path(dir_okay=False), help="CSV file to write [default: standard output]")
@click.pass_obj
def fetch_sensors_command(settings, out: str | None) -> None:
    """Fetch the sensor list from the GROW API (GROW_API_URL, GROW_API_KEY)."""
    from etl.sources.grow import GrowClient

    sensors, quarantined = GrowClient(settings).get_sensors()
    for record in quarantined:
        click.echo(f"{record.action}: {record.entity_id}: {record.reason}", err=True)
    _write(sensors, out, "sensors")


@cli.command("fetch-readings")
@click.argument("sensor_ids", nargs=-1, required=True, callback=_sensor_ids)
@click.option("--start", required=True, help="first time, ISO 8601 UTC")
@click.option("--end", required=True, help="last time, ISO 8601 UTC")
@click.option("--out", type=click.Path(dir_okay=False), help="CSV file to write [default: standard output]")
@click.pass_obj
def fetch_readings_command(settings, sensor_ids, start: str, end: str, out: str | None) -> None:
    """Fetch sensors' readings from the GROW API, variables joined by timestamp."""
    from etl.sources.grow import GrowClient

    _write(
        GrowClient(settings).get_readings(list(sensor_ids), _utc_option(start), _utc_option(end)),
        out,
        "readings",
    )


@cli.command("live-stations")
@click.option("--now", help="judge liveness at this time, ISO 8601 UTC [default: now]")
@click.option("--out", type=click.Path(dir_okay=False), help="CSV file to write [default: standard output]")
@click.pass_obj
def live_stations_command(settings, now: str | None, out: str | None) -> None:
    """List WOW stations and whether each is live (reported temperature and rainfall recently)."""
    from etl.sources.wow import WowClient

    stations, origin = WowClient(settings).get_live_stations(_utc_option(now) or dt.datetime.now(dt.UTC))
    click.echo(
        f"{int(stations['is_live'].sum()):,} of {len(stations):,} stations live, from {origin}", err=True
    )
    _write(stations, out, "stations")


@cli.command("run")
@shard_option
@click.option(
    "--google-api-key",
    help="the Google geocoding key, as 2019's store_sensor_info took it; GOOGLE_API_KEY or "
    "AWS_GOOGLE_SECRET keep it out of the process list",
)
@click.pass_obj
def run_command(settings, shard, google_api_key: str | None) -> None:
    """Run the nightly steps in order, recorded in etl_runs. With --shard i/n, wait for every shard of
    the plan to finish a step before the next; runs of overlapping plans exclude each other."""
    from etl.runner import run_nightly

    if google_api_key:
        settings = settings.model_copy(update={"google_api_key": SecretStr(google_api_key)})
        configure_logging(settings)  # the key is redacted like the others
    allocate_big_blocks_apart()
    engine = make_engine(settings)
    ensure_schema(engine)
    for report in run_nightly(settings, engine, shard, processes=True):
        click.echo(f"{report.name:<24} {report.rows:>12,} rows written  {report.seconds:>7.1f} s")

"""`python -m etl <command>`: the command line of the ETL and the database."""

from __future__ import annotations

import click

from etl.db import (
    alembic_config,
    check_connection,
    current_revision,
    head_revision,
    init_db,
    make_engine,
    table_counts,
)
from etl.errors import GrowWowError
from etl.logs import configure_logging
from etl.settings import load_settings


class Commands(click.Group):
    """A command group that prints the errors a user can act on as one line, with exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GrowWowError as exc:
            raise click.ClickException(str(exc)) from None


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
    """Print the database, its schema revision and the rows in each table."""
    engine = make_engine(settings)
    check_connection(engine)
    with engine.connect() as connection:
        revision = current_revision(connection)
    click.echo(f"database  {settings.database_label}")
    click.echo(
        f"schema    revision {revision or 'none (run: python -m etl init-db)'}, newest {head_revision()}"
    )
    for name, count in table_counts(engine).items():
        click.echo(f"  {name:<18} {'missing' if count is None else f'{count:>12,} rows'}")


@cli.command("new-migration")
@click.argument("message")
@click.pass_obj
def new_migration_command(settings, message: str) -> None:
    """Draft a schema migration from the difference between etl/schema.py and the database."""
    from alembic import command

    engine = make_engine(settings)
    check_connection(engine)
    with engine.begin() as connection:
        command.revision(alembic_config(connection), message=message, autogenerate=True)

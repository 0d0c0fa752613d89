"""`python -m devtools.train_models`: train the shipped autoencoders on the clean sensors of a simulated
year (generated under var/ if missing; the labelled faulty sensors are left out). The files in models/
came from this command with its defaults (~3 min on 2 cores).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
import pandas as pd

from detection.detect import wet_days
from detection.model import MODEL_DIR, VARIABLES
from devtools.evaluate import network_frames
from devtools.simulator.generate import generate
from devtools.simulator.network import Network
from models.train import train_models

# A whole year, so the models have seen every season's days (seed 1 is used for nothing else).
TRAIN_NETWORK = {"sensors": 400, "days": 365, "seed": 1, "end": dt.datetime(2026, 11, 1, tzinfo=dt.UTC)}


def network_readings(folder: Path) -> pd.DataFrame:
    """The clean sensors' readings of a generated network (faulty ones, per labels.csv, left out)."""
    network = Network(folder)
    faulty = set(network.labels()["sensor_id"])
    codes = [c for c in network.sensors["sensor_id"] if c not in faulty]
    return network.visible_readings(codes, network.start, network.end, now=network.end)


def training_network(folder: Path | None = None) -> Path:
    folder = folder or Path("var") / f"train-{TRAIN_NETWORK['seed']}"
    if not (folder / "network.json").exists():
        click.echo(f"generating the training network in {folder} …")
        generate(folder, **TRAIN_NETWORK)
    return folder


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    help="a generated network to learn its clean sensors from [default: generate one under var/]",
)
@click.option("--seed", type=int, default=2026, show_default=True)
@click.option("--epochs", type=click.IntRange(1), default=30, show_default=True, help="at most (stops early)")
@click.option("--units", type=click.IntRange(2), default=16, show_default=True, help="LSTM units per layer")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=MODEL_DIR, show_default=True)
@click.option("--variable", "variables", multiple=True, type=click.Choice(VARIABLES), help="[default: all]")
def main(data, seed, epochs, units, out, variables) -> None:
    """Train the three autoencoders on the clean sensors of a simulated network."""
    data = training_network(data)
    source = f"clean sensors of the simulated network {data.name}"
    _, stations, links = network_frames(Network(data))
    wet = wet_days(stations, links)
    train_models(network_readings(data), source, out, seed, epochs, units, tuple(variables), wet)


if __name__ == "__main__":
    main(prog_name="python -m devtools.train_models")

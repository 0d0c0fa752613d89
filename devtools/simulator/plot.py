"""A picture to judge the simulator by: a clean and a faulty sensor, each beside its nearest station."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from devtools.simulator.network import MISSING, SCALE, STEP, Network


def _nearest_station(network: Network, sensor: int) -> int:
    sensors, stations = network.sensors, network.stations
    lat = np.radians(sensors.at[sensor, "latitude"])
    dlat = np.radians(stations["latitude"].to_numpy()) - lat
    dlon = np.radians(stations["longitude"].to_numpy() - sensors.at[sensor, "longitude"]) * np.cos(lat)
    return int(np.argmin(dlat**2 + dlon**2))


def _series(array: np.ndarray, row: int) -> np.ndarray:
    values = np.asarray(array[row], dtype=np.float64)
    return np.where(values <= MISSING + 1, np.nan, values / SCALE)


def plot_sensors(folder: str | Path, out: str | Path, kind: str | None = None) -> str:
    """Write the PNG and return a line saying what it shows; the faulty sensor is the first with a fault
    of `kind` (any kind when None)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    network = Network(folder)
    labels = network.labels()
    clean_codes = set(network.sensors["sensor_id"]) - set(labels["sensor_id"])
    if kind is not None:
        labels = labels[labels["kind"] == kind]
        if labels.empty:
            raise ValueError(f"no sensor of this network has a {kind} fault")
    faulty_code = labels.iloc[0]["sensor_id"] if len(labels) else None
    clean = next(i for i, code in enumerate(network.sensors["sensor_id"]) if code in clean_codes)
    chosen = [("clean", clean)]
    if faulty_code is not None:
        chosen.append(
            (
                f"faulty: {labels.iloc[0]['kind']} ({labels.iloc[0]['variable']})",
                network.sensor_index[faulty_code],
            )
        )
    times = pd.date_range(network.start, periods=network.steps, freq=STEP)

    fig, axes = plt.subplots(4, len(chosen), figsize=(8 * len(chosen), 11), sharex=True, squeeze=False)
    for column, (title, sensor) in enumerate(chosen):
        station = _nearest_station(network, sensor)
        code = network.sensors.at[sensor, "sensor_id"]
        site = network.stations.at[station, "site_id"]
        ax_t, ax_s, ax_l, ax_b = axes[:, column]
        ax_t.plot(times, _series(network.grow["air_temperature"], sensor), lw=0.7, label=f"sensor {code}")
        station_t = _series(network.wow["air_temperature"], station)
        ax_t.plot(times, station_t, ".", ms=1.5, color="black", label=f"WOW station {site[:8]}")
        ax_t.set_ylabel("air temperature °C")
        ax_t.set_title(f"{title}: {code}, {network.sensors.at[sensor, 'name'][:40]}")
        ax_t.legend(loc="upper left", fontsize=8)
        ax_s.plot(times, _series(network.grow["soil_moisture"], sensor), lw=0.8, color="tab:brown")
        ax_s.set_ylabel("soil moisture %")
        rain = ax_s.twinx()
        rain.bar(
            times, np.nan_to_num(_series(network.wow["rainfall"], station)), width=1 / 96, color="tab:blue"
        )
        rain.set_ylabel("station rainfall mm")
        ax_l.plot(times, _series(network.grow["light"], sensor), lw=0.6, color="goldenrod")
        ax_l.set_ylabel("light mol/m²/d")
        ax_b.plot(times, _series(network.grow["battery_level"], sensor), lw=0.8, color="green")
        ax_b.set_ylabel("battery %")
        if column == 1:
            fault = labels.iloc[0]
            for ax in (ax_t, ax_s, ax_l, ax_b):
                ax.axvspan(fault["start"], fault["end"], color="red", alpha=0.08)
    fig.autofmt_xdate()
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    codes = ", ".join(network.sensors.at[s, "sensor_id"] for _, s in chosen)
    return f"wrote {out}: sensors {codes} beside their stations"

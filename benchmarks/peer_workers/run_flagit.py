"""flagit (TU Wien's ISMN quality control, Dorigo et al. 2013, doi:10.2136/vzj2012.0097) on a batch of frames.

Runs in var/peers/flagit (pandas < 2.2): `python run_flagit.py BATCH.npz MASKS.npy [JOBS]`, see _batch.py.

flagit's documented interface, `flagit.Interface(frame).run(sat_point=...)`, with every flag it has:
  C01 soil moisture < 0 %, C02 > 60 % (flagit's settings.py, ISMN's published bounds), C03 above the soil's
  saturation point (only where the frame carries `saturation_point`, in %: ISMN computes it per station from
  HWSD texture with Saxton & Rawls 2006; we have no texture, and flagit itself skips C03 without one);
  D01/D02 in-situ soil/air temperature below 0 °C, D04 a rise without at least 0.2 mm of rain in the last 24 h
  (flagit's default minimum, no sensor depth given), each only where the frame carries that column (D03 and
  D05 need GLDAS, which we have not); D06 spike, D07/D08 negative/positive break, D09 low plateau after a
  drop, D10 saturated plateau, from soil moisture alone. Every threshold is flagit's own.
The mask is any C or D flag.

flagit's windows count hourly samples (3, 12, 13, 24 and 25 of them: ISMN's files are hourly). So a frame
sampled more often than hourly goes through flagit once per hourly phase (_batch.hourly_phases): each
sample is checked against samples an hour apart, as ISMN checks its hourly files, and every sample is
checked. Rain for a phase is the rain of the hour ending at each of its samples. Frames sampled hourly or
less often go through as they are: on daily frames flagit's windows are days, which is all it can do.
flagit counts rows, not times: a gap in a frame shortens its windows as it would in ISMN's files.
"""

from __future__ import annotations

import _batch

_batch.quiet()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from flagit import flagit  # noqa: E402

ANCILLARY = ("soil_temperature", "air_temperature", "precipitation")


def flag_one(frame: pd.DataFrame) -> np.ndarray:
    n = len(frame)
    mask = np.zeros(n, dtype=bool)
    phases = _batch.hourly_phases(n, _batch.median_step_s(frame["ts"]))
    columns = {"soil_moisture": frame["soil_moisture"].to_numpy(dtype=float)}
    for name in ANCILLARY:
        if name in frame:
            columns[name] = frame[name].to_numpy(dtype=float)
    if "precipitation" in columns and len(phases) > 1:
        rain = pd.Series(columns["precipitation"], index=pd.DatetimeIndex(frame["ts"]))
        columns["precipitation"] = rain.rolling("1h").sum().to_numpy()
    sat_point = None
    if "saturation_point" in frame and frame["saturation_point"].notna().any():
        sat_point = float(frame["saturation_point"].dropna().iloc[0])
    for rows in phases:
        if len(rows) < 3:  # flagit's Savitzky-Golay derivatives need three samples
            continue
        data = pd.DataFrame({name: values[rows] for name, values in columns.items()})
        flagged = flagit.Interface(data).run(sat_point=sat_point)["qflag"]
        bad = flagged.map(lambda tags: any(str(tag)[0] in "CD" for tag in tags)).astype(bool)
        mask[rows[bad.index[bad.to_numpy()].to_numpy()]] = True
    return mask


if __name__ == "__main__":
    _batch.main(flag_one)

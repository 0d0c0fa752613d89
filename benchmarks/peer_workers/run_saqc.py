"""SaQC (UFZ's System for automated Quality Control) on a batch of frames.

Runs in var/peers/saqc: `python run_saqc.py BATCH.npz MASKS.npy [JOBS]`, see _batch.py.

SaQC's basic anomaly tests, in this order (SaQC runs a pipeline in order, and by default a test does not see
the values an earlier one flagged BAD), with thresholds for volumetric soil moisture in %:
  flagRange(min=0, max=60): SaQC's own soil-moisture example configuration (docs/resources/data/config.csv)
    bounds soil moisture by 60 %, ISMN's published upper bound (flag C02); below 0 is impossible (physics).
    Its lower bound of 10 % there is its one site's, not a general one.
  flagOffset(thresh=5, tolerance=2, window=6 h): SaQC's spike test, a value or a run of values leaving
    the level before by more than 5 % and coming back to within 2 % of it within 6 hours. Soil moisture
    rises with rain and drains over days, so it does not go up 5 % and back within hours (physics); 5 % is
    five times the noise of low-cost capacitive probes (about ±1 %: datasheets), 2 % twice it.
  flagJumps(thresh=20, window=12 h): a change of more than 20 % between the means of the 12 hours before and
    after: about half the pore space of a mineral soil (porosity 40-50 %), which only a soaking storm on dry
    soil does; drainage never does in half a day (physics).
  flagConstants(thresh=0.05, window=48 h): values holding within 0.05 % (half the 0.1 % step most probes
    report in: datasheets) for more than 48 hours, as QARTOD's flat line here (see run_ioos_qc.py: a soil
    at its residual water may hold for months, which no duration tells from a stuck probe). SaQC 1.x's
    soilMoisture_constant took 12 h from Dorigo et al. 2013, but together with conditions on rain and
    level that SaQC 2 no longer has.
The mask is every value SaQC flagged (flag above UNFLAGGED; every test here sets BAD).

SaQC's windows are spans of time already, so they mean the same at every step. Where a frame's samples are
farther apart than a window lets a test see (flagOffset needs the samples before and after a spike inside
its window; flagJumps a mean on either side), the window is widened to 2.5 median steps: the shortest span
that holds a one-sample departure with its neighbours, i.e. 60 hours on daily frames.
"""

from __future__ import annotations

import _batch

_batch.quiet()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import saqc  # noqa: E402
from saqc.constants import UNFLAGGED  # noqa: E402

RANGE_MIN, RANGE_MAX = 0.0, 60.0
OFFSET_THRESH, OFFSET_TOLERANCE, OFFSET_WINDOW_S = 5.0, 2.0, 6 * 3600
JUMP_THRESH, JUMP_WINDOW_S = 20.0, 12 * 3600
CONSTANT_THRESH, CONSTANT_WINDOW_S = 0.05, 48 * 3600


def _window(seconds: float, step_s: float) -> str:
    return f"{round(max(seconds, 2.5 * step_s))}s"


def flag_one(frame: pd.DataFrame) -> np.ndarray:
    step_s = _batch.median_step_s(frame["ts"])
    index = pd.DatetimeIndex(frame["ts"])
    first = ~index.duplicated()  # SaQC needs unique times: a repeated time gets its first row's flag
    data = pd.DataFrame({"sm": frame["soil_moisture"].to_numpy(dtype=float)[first]}, index=index[first])
    qc = saqc.SaQC(data)
    qc = qc.flagRange("sm", min=RANGE_MIN, max=RANGE_MAX)
    qc = qc.flagOffset(
        "sm", thresh=OFFSET_THRESH, tolerance=OFFSET_TOLERANCE, window=_window(OFFSET_WINDOW_S, step_s)
    )
    qc = qc.flagJumps("sm", thresh=JUMP_THRESH, window=_window(JUMP_WINDOW_S, step_s))
    qc = qc.flagConstants("sm", thresh=CONSTANT_THRESH, window=f"{CONSTANT_WINDOW_S}s")
    flagged = (qc.flags["sm"].to_numpy() > UNFLAGGED).astype(bool)
    return flagged[np.cumsum(first) - 1]


if __name__ == "__main__":
    _batch.main(flag_one)

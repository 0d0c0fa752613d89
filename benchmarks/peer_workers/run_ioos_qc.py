"""ioos_qc's QARTOD tests on a batch of frames.

Runs in var/peers/ioos_qc: `python run_ioos_qc.py BATCH.npz MASKS.npy [JOBS]`, see _batch.py.

QARTOD's required tests for an in-situ time series that apply to one variable, from ioos_qc.qartod, with
thresholds for volumetric soil moisture in %:
  gross_range_test: FAIL outside 0-100 % (a volume fraction: impossible), SUSPECT outside 0.5-60 % (60 % is
    ISMN's published upper bound of plausible soil moisture, flag C02; below 0.5 % is drier than air-dry
    sand, which still holds about 0.5-1 % of water: physics).
  spike_test, method "differential" (documented): a sample leaving both its neighbours in opposite
    directions by at least SUSPECT 5 % / FAIL 10 %. Rain raises soil moisture in a step and it drains away
    over days, so a real rise is not followed by a fall of the same size within the hour; QARTOD's default
    "average" method would call the first sample of every sharp wetting a spike. The threshold of 5 % is
    five times the noise of low-cost capacitive probes (about ±1 %: physics and datasheets).
  rate_of_change_test: SUSPECT above 25 %/h, FAIL above 50 %/h. A wetting front passing a shallow probe in
    a downpour can raise it by tens of % within the hour (e.g. 50 mm/h into soil 30 % short of saturation
    advances the front about 17 cm/h), while drainage lowers it by a few %/h at most; the test is
    symmetric, so its threshold has to let the fastest real wetting through (physics).
  flat_line_test: SUSPECT when the range stays below 0.05 % (half the 0.1 % step most probes report in:
    datasheets) for 48 h, FAIL for 96 h. A wetting or drying soil moves by a reporting step within two
    days, though a dry-season probe may hold one value through a day and a night (real data, issue 30).
    A soil at its residual water may hold for months (ISMN flags AMMA-CATCH's Sahelian probes G through
    such runs): a flat line alone cannot tell that from a stuck probe, whatever its duration.
The mask is an aggregate flag (qartod_compare) of SUSPECT (3) or FAIL (4); MISSING and UNKNOWN are not
flagged.

gross_range and flat_line are defined in values and seconds (ioos_qc turns the durations into samples with
the frame's median step itself). spike_test compares a sample with its two neighbours and
rate_of_change_test with the one before, so on a frame sampled more often than hourly both run once per
hourly phase (_batch.hourly_phases): neighbours an hour apart at any step, so a departure of up to about an
hour is one spike at 3 min as at 1 h, and sensor noise between consecutive 3-minute samples is not read
as a rate. On hourly and daily frames they run on the frame as it is.
"""

from __future__ import annotations

import _batch

_batch.quiet()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from ioos_qc import qartod  # noqa: E402

GROSS_FAIL = (0.0, 100.0)
GROSS_SUSPECT = (0.5, 60.0)
SPIKE_SUSPECT, SPIKE_FAIL = 5.0, 10.0
RATE_SUSPECT_PER_S, RATE_FAIL_PER_S = 25.0 / 3600, 50.0 / 3600
FLAT_TOLERANCE = 0.05
FLAT_SUSPECT_S, FLAT_FAIL_S = 48 * 3600, 96 * 3600


def flag_one(frame: pd.DataFrame) -> np.ndarray:
    values = frame["soil_moisture"].to_numpy(dtype=float)
    times = pd.DatetimeIndex(frame["ts"]).tz_convert(None).to_numpy()
    n = len(values)
    results = [
        np.asarray(qartod.gross_range_test(values, fail_span=GROSS_FAIL, suspect_span=GROSS_SUSPECT)),
        np.asarray(
            qartod.flat_line_test(
                values,
                times,
                suspect_threshold=FLAT_SUSPECT_S,
                fail_threshold=FLAT_FAIL_S,
                tolerance=FLAT_TOLERANCE,
            )
        ),
    ]
    spike = np.full(n, qartod.QartodFlags.UNKNOWN, dtype="uint8")
    rate = np.full(n, qartod.QartodFlags.UNKNOWN, dtype="uint8")
    for rows in _batch.hourly_phases(n, _batch.median_step_s(frame["ts"])):
        if len(rows) >= 3:
            spike[rows] = np.asarray(
                qartod.spike_test(
                    values[rows],
                    suspect_threshold=SPIKE_SUSPECT,
                    fail_threshold=SPIKE_FAIL,
                    method="differential",
                )
            )
        if len(rows) >= 2:
            rate[rows] = np.asarray(
                qartod.rate_of_change_test(
                    values[rows], times[rows], threshold=RATE_SUSPECT_PER_S, fail_threshold=RATE_FAIL_PER_S
                )
            )
    results += [spike, rate]
    aggregate = np.asarray(qartod.qartod_compare(results))
    return (aggregate == qartod.QartodFlags.SUSPECT) | (aggregate == qartod.QartodFlags.FAIL)


if __name__ == "__main__":
    _batch.main(flag_one)

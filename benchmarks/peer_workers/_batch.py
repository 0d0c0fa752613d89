"""The batch a peer's worker reads and the masks it writes back; shared by the three workers.

Runs inside a peer's own environment (var/peers/<peer>), so it imports only numpy, pandas and the standard
library. The batch is one uncompressed .npz written by benchmarks/peers.py: every frame's rows one after
another, `offsets` (n frames + 1) saying where each frame starts, `ts` in int64 nanoseconds (UTC),
`soil_moisture` in %, and for each optional column its values (NaN where a frame has none) with
`has_<column>` (one bool a frame) saying which frames carry it. The masks go back as one .npy of bools,
aligned with the batch's rows.

The frames are flagged in parallel processes (forked, so the peer is imported once), a contiguous chunk of
frames each, in order.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sys
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

OPTIONAL = ("air_temperature", "soil_temperature", "precipitation", "saturation_point")
HOUR_S = 3600.0

_batch: dict[str, np.ndarray] = {}
_flag_one: Callable[[pd.DataFrame], np.ndarray] | None = None


def frame(index: int) -> pd.DataFrame:
    """Frame `index` of the batch: `ts` (UTC), `soil_moisture` and the optional columns it carries."""
    start, stop = int(_batch["offsets"][index]), int(_batch["offsets"][index + 1])
    columns = {
        "ts": pd.to_datetime(_batch["ts"][start:stop], utc=True),
        "soil_moisture": _batch["soil_moisture"][start:stop],
    }
    for name in OPTIONAL:
        if name in _batch and _batch[f"has_{name}"][index]:
            columns[name] = _batch[name][start:stop]
    return pd.DataFrame(columns)


def median_step_s(ts: pd.Series) -> float:
    """The frame's median step in seconds (an hour for a frame of one row)."""
    steps = np.diff(pd.DatetimeIndex(ts).as_unit("ns").asi8) / 1e9
    steps = steps[steps > 0]
    return float(np.median(steps)) if steps.size else HOUR_S


def hourly_phases(n: int, step_s: float) -> list[np.ndarray]:
    """Row positions of the hourly series interleaved in a frame sampled every `step_s` seconds.

    A test defined in samples (flagit's windows of 3, 12, 13, 24 and 25 hourly samples, QARTOD's spike test
    between a sample and its two neighbours) means hours on hourly data. On a frame sampled more often than
    hourly it runs once on each phase: every k-th row (k = one hour over the median step) from row 0, from
    row 1, ..., from row k-1; each phase is an hourly series, and each sample is judged against samples an
    hour away, whatever the frame's step. Frames sampled hourly or less often are one phase.
    """
    k = max(1, round(HOUR_S / step_s)) if step_s < HOUR_S else 1
    return [np.arange(phase, n, k) for phase in range(min(k, n))]


def _flag_chunk(bounds: tuple[int, int]) -> list[np.ndarray]:
    assert _flag_one is not None
    return [np.asarray(_flag_one(frame(index)), dtype=bool) for index in range(*bounds)]


def main(flag_one: Callable[[pd.DataFrame], np.ndarray]) -> None:
    """`python run_<peer>.py BATCH.npz MASKS.npy [JOBS]`: flag every frame of the batch with `flag_one`
    (a frame in, one bool a row out) and write the masks."""
    global _flag_one
    batch_path, masks_path = sys.argv[1], sys.argv[2]
    jobs = int(sys.argv[3]) if len(sys.argv) > 3 else (os.cpu_count() or 1)
    with np.load(batch_path) as stored:
        _batch.update({name: stored[name] for name in stored.files})
    _flag_one = flag_one
    count = len(_batch["offsets"]) - 1
    jobs = max(1, min(jobs, count))
    # Contiguous chunks, several a process so that one slow chunk does not hold the others up.
    edges = np.linspace(0, count, min(count, jobs * 8) + 1).round().astype(int)
    chunks = [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]
    if jobs == 1:
        results = [_flag_chunk(chunk) for chunk in chunks]
    else:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            results = pool.map(_flag_chunk, chunks, chunksize=1)
    masks = [mask for chunk in results for mask in chunk]
    for index, mask in enumerate(masks):
        rows = int(_batch["offsets"][index + 1] - _batch["offsets"][index])
        if mask.shape != (rows,):
            raise RuntimeError(f"frame {index}: a mask of shape {mask.shape} for {rows} rows")
    np.save(masks_path, np.concatenate(masks) if masks else np.zeros(0, dtype=bool))


def quiet() -> None:
    """The peers' own deprecation and pandas warnings are theirs, not ours: keep stderr for real errors."""
    warnings.simplefilter("ignore")

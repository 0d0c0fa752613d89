"""The peers benchmarks/bench_real.py measures detection against: flagit, ioos_qc (QARTOD) and SaQC.

    from benchmarks.peers import PEERS, flag_series
    masks = flag_series("saqc", frames)  # one bool array a frame: True where the peer flags the sample

Each frame has `ts` (tz-aware UTC, sorted, any step, maybe irregular) and `soil_moisture` in % (volumetric
× 100), and may have `air_temperature` and `soil_temperature` (°C), `precipitation` (mm a sample) and
`saturation_point` (% vol, the soil's, for flagit's C03). Each peer lives in its own environment,
var/peers/<peer>, made with this Python from benchmarks/peer_requirements/<peer>.txt (every version pinned;
flagit needs pandas < 2.2, the others want pandas 3) by `make peers` or, when missing or older than its
requirements, by `ensure_environment`. One call sends all its frames to the peer at once: they are written
to one .npz in a temporary folder, the peer's worker (benchmarks/peer_workers/run_<peer>.py) runs once in
the peer's environment over all of them, in parallel processes, and writes the masks back.

What each peer runs (every threshold's source is in its worker's docstring):

flagit 0.3 (TU Wien, ISMN's quality control: Dorigo et al. 2013)
    flagit.Interface(frame).run(): C01 < 0 %, C02 > 60 % (ISMN's published bounds), C03 above
    `saturation_point` (only when given: ISMN derives it from the soil's texture); D01/D02 soil/air
    temperature < 0 °C and D04 a rise without 0.2 mm of rain in 24 h, where those columns are given; D06
    spikes, D07/D08 breaks, D09 low plateaus after a drop, D10 saturated plateaus. All thresholds flagit's
    own. Flagged: any C or D flag.
ioos_qc 3.0 (IOOS QARTOD)
    gross_range_test FAIL outside 0-100 %, SUSPECT outside 0.5-60 %; spike_test (differential) SUSPECT 5 %,
    FAIL 10 %; rate_of_change_test SUSPECT 25 %/h, FAIL 50 %/h; flat_line_test within 0.05 % SUSPECT after
    48 h, FAIL after 96 h. Flagged: aggregate flag SUSPECT (3) or FAIL (4).
SaQC 2.9 (UFZ)
    flagRange 0-60 %; flagOffset (spikes) leaving the level by > 5 % and back within 2 % within 6 h;
    flagJumps > 20 % between 12-hour means; flagConstants within 0.05 % for > 48 h. Flagged: any flag.

The thresholds are physical (a volume fraction, ISMN's bounds, the fastest real wetting and drying, the
noise and reporting step of real probes), never fitted to the benchmark. Checks mean the same at 3 min,
15 min, 1 h and 1 day: tests that count samples (flagit's windows of 3-25 hourly samples, QARTOD's spike and
rate of change between neighbours) run on each hourly phase of a frame sampled more often than hourly
(every k-th sample, k = an hour over the median step), so neighbours are an hour apart at any step; tests
defined in time (QARTOD's flat line, SaQC's windows) keep their spans, widened to 2.5 median steps where a
daily frame's samples are farther apart than the window.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
PEERS = ("flagit", "ioos_qc", "saqc")
PEERS_DIR = ROOT / "var" / "peers"
REQUIREMENTS_DIR = ROOT / "benchmarks" / "peer_requirements"
WORKERS_DIR = ROOT / "benchmarks" / "peer_workers"
OPTIONAL_COLUMNS = ("air_temperature", "soil_temperature", "precipitation", "saturation_point")
STDERR_TAIL = 3000


class PeerError(RuntimeError):
    """A peer's environment could not be built or its worker failed; the message names the peer."""


def _check(peer: str) -> None:
    if peer not in PEERS:
        raise ValueError(f"unknown peer {peer!r}: one of {', '.join(PEERS)}")


def environment_dir(peer: str) -> Path:
    _check(peer)
    return PEERS_DIR / peer


def python_of(peer: str) -> Path:
    return environment_dir(peer) / "bin" / "python"


def requirements_of(peer: str) -> Path:
    _check(peer)
    return REQUIREMENTS_DIR / f"{peer}.txt"


def is_ready(peer: str) -> bool:
    """The peer's environment is installed (its marker, as the Makefile's) and no older than its
    requirements."""
    marker = environment_dir(peer) / ".installed"
    return (
        marker.exists()
        and python_of(peer).exists()
        and marker.stat().st_mtime >= requirements_of(peer).stat().st_mtime
    )


def _tail(text: str) -> str:
    """The last line of a failed command's output (the error, on the first line of our message), then the
    tail of that output."""
    text = text.strip()
    if not text:
        return "(it printed nothing)"
    last = text.splitlines()[-1]
    return f"{last}\n{text if len(text) <= STDERR_TAIL else '…' + text[-STDERR_TAIL:]}"


def _run_or_fail(peer: str, what: str, command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=_clean_env(), check=False)
    if result.returncode != 0:
        raise PeerError(
            f"{peer}: {what} failed (exit {result.returncode}): {_tail(result.stderr or result.stdout)}"
        )


def ensure_environment(peer: str) -> Path:
    """The Python of the peer's own environment, var/peers/<peer>: made with this Python and installed from
    benchmarks/peer_requirements/<peer>.txt when missing or older than that file (as `make peers` does).
    Two processes asking at once build it once."""
    if is_ready(peer):
        return python_of(peer)
    folder = environment_dir(peer)
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    with open(PEERS_DIR / f".{peer}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_ready(peer):
            return python_of(peer)
        if not python_of(peer).exists():
            _run_or_fail(
                peer, f"making its environment {folder}", [sys.executable, "-m", "venv", str(folder)]
            )
        requirements = requirements_of(peer)
        _run_or_fail(
            peer,
            f"installing {requirements} into {folder}",
            [str(python_of(peer)), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
        )
        (folder / ".installed").touch()
    return python_of(peer)


def _clean_env(**extra: str) -> dict[str, str]:
    """Our environment without what would make another Python see our packages, and without writing
    bytecode (the peers' environments stay as installed)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def _utc_ns(ts: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(pd.to_datetime(ts, utc=True)).as_unit("ns").asi8


def _write_batch(path: Path, frames: Sequence[pd.DataFrame]) -> np.ndarray:
    lengths = np.array([len(frame) for frame in frames], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    arrays: dict[str, np.ndarray] = {
        "offsets": offsets,
        "ts": np.concatenate([_utc_ns(frame["ts"]) for frame in frames]),
        "soil_moisture": np.concatenate([frame["soil_moisture"].to_numpy(dtype=float) for frame in frames]),
    }
    for name in OPTIONAL_COLUMNS:
        has = np.array([name in frame.columns for frame in frames], dtype=bool)
        if has.any():
            arrays[f"has_{name}"] = has
            arrays[name] = np.concatenate(
                [
                    frame[name].to_numpy(dtype=float)
                    if name in frame.columns
                    else np.full(len(frame), np.nan)
                    for frame in frames
                ]
            )
    np.savez(path, **arrays)
    return offsets


def flag_series(peer: str, frames: Sequence[pd.DataFrame], jobs: int | None = None) -> list[np.ndarray]:
    """One bool mask a frame, aligned with its rows: True where `peer` flags the sample as bad or suspect.

    All frames go to the peer's worker in one batch, run once in the peer's own environment (built first if
    missing) with `jobs` processes (default: every CPU). Raises PeerError naming the peer, with the tail of
    its stderr, if its environment cannot be built or its worker fails."""
    python = ensure_environment(peer)
    masks = [np.zeros(len(frame), dtype=bool) for frame in frames]
    sent = [index for index, frame in enumerate(frames) if len(frame)]
    if not sent:
        return masks
    for index in sent:
        missing = {"ts", "soil_moisture"} - set(frames[index].columns)
        if missing:
            raise ValueError(f"frame {index} has no {', '.join(sorted(missing))} column")
    with tempfile.TemporaryDirectory(prefix=f"peer-{peer}-") as folder:
        batch, out = Path(folder) / "batch.npz", Path(folder) / "masks.npy"
        offsets = _write_batch(batch, [frames[index] for index in sent])
        command = [str(python), str(WORKERS_DIR / f"run_{peer}.py"), str(batch), str(out)]
        command.append(str(jobs or os.cpu_count() or 1))
        result = subprocess.run(
            command, capture_output=True, text=True, env=_clean_env(MPLCONFIGDIR=folder), check=False
        )
        if result.returncode != 0 or not out.exists():
            raise PeerError(
                f"{peer}: its worker failed on {len(sent)} frames (exit {result.returncode}): "
                f"{_tail(result.stderr or result.stdout)}"
            )
        flat = np.load(out)
    if flat.shape != (offsets[-1],):
        raise PeerError(f"{peer}: its worker gave {flat.shape[0]} flags for {offsets[-1]} samples")
    for position, index in enumerate(sent):
        masks[index] = flat[offsets[position] : offsets[position + 1]].astype(bool)
    return masks

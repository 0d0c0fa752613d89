"""The benchmark's peers (benchmarks/peers.py): flagit, ioos_qc and SaQC, each run by its worker in its own
environment, flag an obvious spike and an out-of-range value and leave a clean series alone, at hourly and
15-minute steps and on irregular samples; their masks come back aligned with each frame; a worker that
fails is named.

The environments (var/peers/<peer>) are made by `make peers` (and `make test`); these tests never build
them (nothing under var/ changes in a test). Without one, its tests are skipped with the reason, except
under CI (CI=true), where they fail.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from benchmarks import peers
from benchmarks.peers import PEERS, PeerError, flag_series

DAYS = 14
SPIKE_AT = pd.Timedelta(days=6, hours=3)
OUT_OF_RANGE_AT = pd.Timedelta(days=9, hours=15)


def need(peer: str) -> None:
    if peers.is_ready(peer):
        return
    reason = f"no {peer} environment at {peers.environment_dir(peer)} (make peers creates it)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def clean(step: str, seed: int = 0) -> pd.DataFrame:
    """A shallow probe drying down over two weeks, wetted by two rains that its rain gauge records, with
    a small daily cycle and the noise of a real probe; air and soil above freezing."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(
        "2021-05-01", periods=int(pd.Timedelta(days=DAYS) / pd.Timedelta(step)), freq=step, tz="UTC"
    )
    days = ((ts - ts[0]) / pd.Timedelta(days=1)).to_numpy()
    moisture = 14 + 10 * np.exp(-days / 4)
    rain = np.zeros(len(ts))
    for start in (5.0, 10.5):
        wetting = np.clip((days - start) / 0.125, 0, 1)  # a 3-hour rise
        moisture += 8 * wetting * np.exp(-np.clip(days - start, 0, None) / 3)
        rain[(days >= start - 0.125) & (days < start + 0.125)] = 2.0 * pd.Timedelta(step) / pd.Timedelta("1h")
    moisture += 0.3 * np.sin(2 * np.pi * days) + rng.normal(0, 0.05, len(ts))
    return pd.DataFrame(
        {
            "ts": ts,
            "soil_moisture": moisture.round(2),
            "air_temperature": 16 + 7 * np.sin(2 * np.pi * (days - 0.35)),
            "soil_temperature": 15 + 2 * np.sin(2 * np.pi * (days - 0.45)),
            "precipitation": rain,
        }
    )


def at(frame: pd.DataFrame, offset: pd.Timedelta) -> int:
    return int(np.searchsorted(frame["ts"], frame["ts"].iloc[0] + offset))


def with_spike(frame: pd.DataFrame) -> pd.DataFrame:
    """One sample leaping 25 % above its neighbours (from about 20 % to 45 %) and back."""
    frame = frame.copy()
    frame.loc[at(frame, SPIKE_AT), "soil_moisture"] += 25.0
    return frame


def with_out_of_range(frame: pd.DataFrame) -> pd.DataFrame:
    """One sample above any soil's saturation (85 %), one below zero (-3 %) a day later."""
    frame = frame.copy()
    frame.loc[at(frame, OUT_OF_RANGE_AT), "soil_moisture"] = 85.0
    frame.loc[at(frame, OUT_OF_RANGE_AT + pd.Timedelta(days=1)), "soil_moisture"] = -3.0
    return frame


def irregular(frame: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """Samples jittered by up to a tenth of the step, a sixth of them dropped."""
    rng = np.random.default_rng(seed)
    step = frame["ts"].diff().median()
    jitter = pd.to_timedelta(rng.uniform(-0.1, 0.1, len(frame)) * step.total_seconds(), unit="s").round("s")
    frame = frame.assign(ts=frame["ts"] + jitter)
    return frame[rng.uniform(size=len(frame)) > 1 / 6].reset_index(drop=True)


STEPS = ("1h", "15min")
CASES = {
    "clean": clean,
    "spike": lambda step: with_spike(clean(step)),
    "out_of_range": lambda step: with_out_of_range(clean(step)),
    "irregular_spike": lambda step: with_spike(irregular(clean(step))),
    "soil_moisture_only_spike": lambda step: with_spike(clean(step)[["ts", "soil_moisture"]]),
}


@pytest.fixture(scope="module", params=PEERS)
def flagged(request):
    """Each peer's masks for every case at every step, from one call (one batch) per peer."""
    peer = request.param
    need(peer)
    frames = {(case, step): make(step) for case, make in CASES.items() for step in STEPS}
    masks = flag_series(peer, list(frames.values()))
    return peer, frames, dict(zip(frames, masks))


@pytest.mark.parametrize("step", STEPS)
def test_a_peer_flags_an_obvious_spike(flagged, step):
    peer, frames, masks = flagged
    for case in ("spike", "irregular_spike", "soil_moisture_only_spike"):
        frame, mask = frames[case, step], masks[case, step]
        assert mask.shape == (len(frame),)
        row = at(frame, SPIKE_AT)
        assert mask[row], f"{peer} misses the spike at {step} ({case}, row {row})"


@pytest.mark.parametrize("step", STEPS)
def test_a_peer_flags_values_out_of_range(flagged, step):
    peer, frames, masks = flagged
    frame, mask = frames["out_of_range", step], masks["out_of_range", step]
    for offset, value in ((OUT_OF_RANGE_AT, "85 %"), (OUT_OF_RANGE_AT + pd.Timedelta(days=1), "-3 %")):
        assert mask[at(frame, offset)], f"{peer} misses {value} at {step}"


@pytest.mark.parametrize("step", STEPS)
def test_a_peer_leaves_a_clean_series_mostly_unflagged(flagged, step):
    peer, _, masks = flagged
    share = masks["clean", step].mean()
    assert share <= 0.02, f"{peer} flags {share:.1%} of a clean series at {step}"


def test_masks_come_back_in_order_and_aligned_with_their_frames():
    need("ioos_qc")
    frames = [with_out_of_range(clean("1h")), clean("1h").iloc[:0], clean("1h"), with_spike(clean("15min"))]
    masks = flag_series("ioos_qc", frames)
    assert [mask.shape for mask in masks] == [(len(frame),) for frame in frames]
    assert masks[0][at(frames[0], OUT_OF_RANGE_AT)]
    assert not masks[2].any()
    assert masks[3][at(frames[3], SPIKE_AT)]


def test_a_failing_worker_is_named_with_its_stderr(tmp_path, monkeypatch):
    need("ioos_qc")
    (tmp_path / "run_ioos_qc.py").write_text("import sys\nsys.exit('the worker broke: no such column')\n")
    monkeypatch.setattr(peers, "WORKERS_DIR", tmp_path)
    with pytest.raises(PeerError, match=r"ioos_qc: its worker failed .*the worker broke: no such column"):
        flag_series("ioos_qc", [clean("1h")])


def test_an_unknown_peer_is_refused():
    with pytest.raises(ValueError, match="unknown peer 'qartod'"):
        flag_series("qartod", [clean("1h")])


def test_an_environment_is_built_when_missing_or_older_than_its_requirements_and_a_failure_is_named(
    tmp_path, monkeypatch
):
    """ensure_environment makes the venv and its marker, keeps it while the requirements are older, and
    installs again when they are newer; pip's failure comes back as a PeerError naming the peer."""
    monkeypatch.setattr(peers, "PEERS_DIR", tmp_path / "peers")
    monkeypatch.setattr(peers, "REQUIREMENTS_DIR", tmp_path)
    requirements = tmp_path / "saqc.txt"
    requirements.write_text("# nothing to install\n")
    python = peers.ensure_environment("saqc")
    marker = tmp_path / "peers" / "saqc" / ".installed"
    assert python == tmp_path / "peers" / "saqc" / "bin" / "python" and python.exists() and marker.exists()
    built = marker.stat().st_mtime_ns
    assert peers.ensure_environment("saqc") == python and marker.stat().st_mtime_ns == built

    requirements.write_text(f"{tmp_path / 'no-such-package'}\n")
    os.utime(requirements, ns=(built + 10**9, built + 10**9))
    assert not peers.is_ready("saqc")
    with pytest.raises(
        PeerError, match=r"saqc: installing .*saqc\.txt.* failed \(exit 1\): .*no-such-package"
    ):
        peers.ensure_environment("saqc")
    assert marker.stat().st_mtime_ns == built

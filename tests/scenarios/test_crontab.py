"""The crontab line as cron runs it: a whole nightly run in a subprocess, with the host's environment file."""

import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from core.db import init_db, make_engine
from core.schema import etl_runs
from etl.settings import load_settings
from tests.deploy.test_deploy import ROOT


def here(command: str, tmp_path: Path) -> str:
    """A crontab command with the host's paths pointed at this checkout, its venv and a scratch folder."""
    return (
        command.replace("/opt/grow-wow", str(ROOT))
        .replace("/etc/grow-wow.env", str(tmp_path / "grow-wow.env"))
        .replace("/var/log/grow-wow", str(tmp_path / "log"))
        .replace(".venv/bin/python", sys.executable)
    )


def test_the_crontab_line_runs_the_nightly_runner(tmp_path, simulator, small_network):
    """The nightly line of deploy/crontab, with its paths pointed at this checkout and a scratch
    database, runs the five steps against the simulator (its small network: what the line does, not how
    much, is tested here) and logs them."""
    lines = [
        line for line in (ROOT / "deploy" / "crontab").read_text().splitlines() if "python -m etl run" in line
    ]
    assert len(lines) == 1
    schedule, command = lines[0].split(maxsplit=5)[:5], lines[0].split(maxsplit=5)[5]
    assert schedule == ["30", "2", "*", "*", "*"]  # every night at 02:30 UTC
    url = simulator(serving=small_network)
    database = f"sqlite:///{tmp_path / 'cron.sqlite'}"
    (tmp_path / "grow-wow.env").write_text(
        "\n".join(
            [
                f"DATABASE_URL={database}",
                f"GROW_API_URL={url}/grow/api",
                "GROW_API_KEY=sim-grow-key",
                f"WOW_API_URL={url}/wow/api",
                "WOW_API_KEY=sim-wow-key",
                "ETL_NOW=2019-07-01T00:00:00+00:00",
                "HTTP_BACKOFF_S=0.01",
            ]
        )
    )
    (tmp_path / "log").mkdir()
    init_db(make_engine(load_settings(database_url=database)))  # once, when the host is set up
    result = subprocess.run(
        ["/bin/bash", "-c", here(command, tmp_path)], capture_output=True, text=True, timeout=600
    )
    log = (tmp_path / "log" / "etl.log").read_text()
    assert result.returncode == 0, log[-2000:]
    for step in (
        "store_sensor_info",
        "find_nearest_wow_live",
        "extract_all_grow_data",
        "detect_anomalies",
        "analyse_anomalies",
        "notify_owners",
    ):
        assert re.search(rf"{step}\s+[\d,]+ rows written", log), step
    engine = make_engine(load_settings(database_url=database))
    with engine.connect() as connection:
        assert set(connection.scalars(select(etl_runs.c.status))) == {"ok"}
    engine.dispose()

    # The archive's line, after the night: the finished days to ARCHIVE_DIR, as the env file names it.
    archive_line = next(
        line
        for line in (ROOT / "deploy" / "crontab").read_text().splitlines()
        if "python -m etl archive" in line
    )
    assert archive_line.split()[:5] == ["30", "4", "*", "*", "*"]
    with (tmp_path / "grow-wow.env").open("a") as env_file:
        env_file.write(f"\nARCHIVE_DIR={tmp_path / 'archive'}\n")
    archive_command = here(archive_line.split(maxsplit=5)[5], tmp_path)
    result = subprocess.run(["/bin/bash", "-c", archive_command], capture_output=True, text=True, timeout=300)
    log = (tmp_path / "log" / "etl.log").read_text()
    assert result.returncode == 0, log[-2000:]
    assert re.search(r"[1-9]\d* day files written", log), log[-2000:]
    assert list((tmp_path / "archive" / "readings").glob("day=2019-06-*/source=grow/readings.parquet"))

    # The guide's monitoring line (deploy/README.md, "Monitoring"), mail caught in a file: quiet after a
    # good night, and a mail once the night is older than the guide allows.
    guide = (ROOT / "deploy" / "README.md").read_text()
    monitor = next(line for line in guide.splitlines() if "python -m etl status" in line and "mail" in line)
    monitor = " ".join(monitor.split()[5:])  # without the schedule
    mailed = tmp_path / "mailed"
    monitor = here(monitor, tmp_path)
    monitor = re.sub(r"\| mail .*$", f"> {mailed}", monitor)
    assert subprocess.run(["/bin/bash", "-c", monitor], timeout=120).returncode == 0
    assert not mailed.exists()
    with (tmp_path / "grow-wow.env").open("a") as env_file:
        env_file.write("\nSTATUS_MAX_AGE_HOURS=0.0001\n")
    subprocess.run(["/bin/bash", "-c", monitor], timeout=120)
    assert "unhealthy" in mailed.read_text()

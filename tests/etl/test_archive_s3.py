"""The open-data archive in an S3 bucket (issue 34), as production keeps it: written, verified, rewritten a
day alone, dropped by retention and read back by the charts and the admin's downloads, all through S3's
API (moto's server on loopback); and an S3 that cannot be reached said in one line."""

import datetime as dt
import socket

import boto3
import pandas as pd
import pytest
from click.testing import CliRunner

from core.archive import open_store
from core.load import bulk_upsert
from core.schema import readings
from etl import archive as archiving
from etl.cli import cli
from flask_back_end import create_app
from flask_back_end.settings import load_settings
from tests.etl.test_archive import NOW, START, network  # noqa: F401 (the fixture)
from tests.etl.test_archive_months import NOW as LATER
from tests.etl.test_archive_months import hourly, stored  # noqa: F401 (the fixture)
from tests.factories import TOKEN


def objects(endpoint: str, bucket: str) -> dict[str, str]:
    """Each object of the bucket by key: its ETag (its bytes' MD5)."""
    client = boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1")
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: item["ETag"] for item in listed}


@pytest.mark.slow  # an S3 server, and every file through its API
def test_an_archive_in_a_bucket_is_written_verified_and_a_late_reading_rewrites_its_day_alone(
    network,  # noqa: F811
    s3_bucket,
):
    endpoint, bucket = s3_bucket
    store = open_store(f"s3://{bucket}/open-data", endpoint, "eu-west-1")
    assert archiving.archive(network, store, NOW, 3, "CC BY 4.0") == {
        "written": 8,
        "kept": 0,
        "days": 4,
        "months": 0,
    }
    before = objects(endpoint, bucket)
    assert sorted(before) == sorted(
        ["open-data/LICENCE.txt", "open-data/manifest.json"]
        + [
            f"open-data/readings/day=2026-03-0{day}/source={source}/readings.parquet"
            for day in range(1, 5)
            for source in ("grow", "opensensemap")
        ]
    )
    assert archiving.verify(store) == []
    with network.begin() as connection:  # a late upload changes one reading of 3 March
        late = {"sensor_id": "osem:b1", "ts": START + pd.Timedelta(days=2, hours=7), "soil_moisture": 44.0}
        bulk_upsert(connection, readings, pd.DataFrame([late]))
    assert archiving.archive(network, store, NOW, 3, "CC BY 4.0")["written"] == 1
    after = objects(endpoint, bucket)
    changed = sorted(key for key in after if after[key] != before[key])
    assert changed == [
        "open-data/manifest.json",
        "open-data/readings/day=2026-03-03/source=opensensemap/readings.parquet",
    ]
    boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1").delete_object(
        Bucket=bucket, Key="open-data/readings/day=2026-03-01/source=grow/readings.parquet"
    )
    assert archiving.verify(store) == ["readings/day=2026-03-01/source=grow/readings.parquet: missing"]


@pytest.mark.slow  # an S3 server, and every file through its API
def test_months_archived_in_a_bucket_are_dropped_and_the_charts_read_them_from_it(
    stored,  # noqa: F811
    s3_bucket,
    monkeypatch,
):
    endpoint, bucket = s3_bucket
    monkeypatch.setenv("ARCHIVE_DIR", f"s3://{bucket}")
    monkeypatch.setenv("ARCHIVE_S3_ENDPOINT_URL", endpoint)
    done = CliRunner().invoke(cli, ["archive"], env={"ETL_NOW": LATER.isoformat()})
    assert done.exit_code == 0, done.output
    assert "day files written" in done.output
    store = open_store(f"s3://{bucket}", endpoint, "eu-west-1")
    assert archiving.drop_archived_months(stored, store, LATER, keep_months=3) == [
        "2026-01: 288 readings dropped, archived and verified",
    ]
    app = create_app(load_settings(backend_token=TOKEN))  # ARCHIVE_DIR and its endpoint from the environment
    with app.test_client() as client:
        answer = client.get(
            "/api/v1/sensors/osem:b1/readings",
            headers={"Authorization": f"Bearer {TOKEN}"},
            query_string={"start": "2026-01-28T00:00:00Z", "end": "2026-02-03T23:59:59Z", "max_points": 5000},
        )
    app.extensions["grow_wow"]["engine"].dispose()
    assert answer.status_code == 200, answer.json
    truth = hourly("osem:b1", 2)
    truth = truth[(truth["ts"] >= "2026-01-28") & (truth["ts"] <= "2026-02-03 23:59:59")]
    assert (
        answer.json["readings"] == len(truth) == 7 * 24
    )  # January from the bucket, February from the database
    served = answer.json["items"]
    assert [row["soil_moisture"] for row in served] == truth["soil_moisture"].tolist()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_s3_that_cannot_be_reached_is_one_line_naming_the_archive(stored, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "sim-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sim-secret-key")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("ARCHIVE_S3_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("ARCHIVE_S3_ATTEMPTS", "1")  # refused at once, not after AWS's back-off
    done = CliRunner().invoke(cli, ["archive", "--to", "s3://grow-archive/open-data"])
    assert done.exit_code == 1
    lines = done.output.strip().splitlines()
    assert len(lines) == 1 and "the archive at s3://grow-archive/open-data" in lines[0], done.output
    assert "Traceback" not in done.output
    with stored.begin() as connection:  # January gone from the database, to the archive
        connection.execute(readings.delete().where(readings.c.ts < dt.datetime(2026, 2, 1, tzinfo=dt.UTC)))
    app = create_app(load_settings(backend_token=TOKEN, archive_dir="s3://grow-archive/open-data"))
    with app.test_client() as client:  # the charts: a clear 503, not half a chart
        answer = client.get(
            "/api/v1/sensors/g1/readings",
            headers={"Authorization": f"Bearer {TOKEN}"},
            query_string={"start": "2026-01-27T00:00:00Z", "end": "2026-01-28T00:00:00Z"},
        )
    app.extensions["grow_wow"]["engine"].dispose()
    assert answer.status_code == 503, answer.json
    assert "the archive at s3://grow-archive/open-data" in answer.json["message"]

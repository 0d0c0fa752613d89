"""The archive for an admin (issue 34): the days the nightly job archived, each a file to download with
the manifest and the licence; an owner sees none of it."""

import datetime as dt

import pytest

from etl import archive as archiving
from flask_front_end import accounts
from flask_front_end import create_app as create_front_end
from flask_front_end.settings import load_settings
from tests.web.test_front_end import PASSWORD, cheap_scrypt, front_settings, log_in  # noqa: F401 - fixtures

NOW = dt.datetime(2019, 6, 20, tzinfo=dt.UTC)


@pytest.fixture
def archived(front_settings, engine, tmp_path):  # noqa: F811 - the fixture imported above
    archiving.archive(engine, tmp_path, NOW, 3, "CC BY 4.0")
    app = create_front_end(load_settings(**front_settings, archive_dir=str(tmp_path)))
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    accounts.create_user(engine, "olive", PASSWORD, "owner", owner_id="owner-a")
    return app, tmp_path


def test_an_admin_sees_each_archived_day_and_downloads_it_as_archived(archived):
    app, root = archived
    admin = app.test_client()
    log_in(admin, "ada")
    page = admin.get("/archive").get_data(as_text=True)
    assert page.count("/archive/files/2019-06-") == 10  # seed's ten days, all of GROW
    assert page.index("2019-06-10") < page.index("2019-06-01")  # newest first
    with admin.get("/archive/files/2019-06-03/grow.parquet") as answer:
        assert answer.status_code == 200
        assert (
            answer.get_data() == (root / "readings/day=2019-06-03/source=grow/readings.parquet").read_bytes()
        )
    with admin.get("/archive/LICENCE.txt") as licence, admin.get("/archive/manifest.json") as manifest:
        assert "CC BY 4.0" in licence.get_data(as_text=True) and manifest.json["files"]


@pytest.mark.parametrize(
    "path",
    [
        "/archive/files/2019-06-30/grow.parquet",  # not archived
        "/archive/files/2019-06-03/elsewhere.parquet",  # no such source
        "/archive/files/yesterday/grow.parquet",  # not a day
        "/archive/files/..%2F..%2Fmanifest/grow.parquet",
        "/archive/secrets.txt",
    ],
)
def test_what_is_not_an_archived_file_is_not_found(archived, path):
    app, _ = archived
    admin = app.test_client()
    log_in(admin, "ada")
    with admin.get(path) as answer:
        assert answer.status_code == 404


def test_an_owner_sees_no_archive(archived):
    app, _ = archived
    olive = app.test_client()
    log_in(olive, "olive")
    for path in ("/archive", "/archive/files/2019-06-03/grow.parquet", "/archive/manifest.json"):
        with olive.get(path) as answer:
            assert answer.status_code == 404, path
    assert "/archive" not in olive.get("/").get_data(as_text=True)


def test_an_admin_downloads_a_day_of_an_archive_kept_in_s3(front_settings, engine, s3_bucket):  # noqa: F811
    import boto3

    endpoint, bucket = s3_bucket
    location = {"archive_dir": f"s3://{bucket}/open-data", "archive_s3_endpoint_url": endpoint}
    archiving.archive(engine, load_settings(**front_settings, **location).archive_store, NOW, 3, "CC BY 4.0")
    app = create_front_end(load_settings(**front_settings, **location))
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    admin = app.test_client()
    log_in(admin, "ada")
    assert admin.get("/archive").get_data(as_text=True).count("/archive/files/2019-06-") == 10
    key = "open-data/readings/day=2019-06-03/source=grow/readings.parquet"
    stored = boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1").get_object(
        Bucket=bucket, Key=key
    )
    with admin.get("/archive/files/2019-06-03/grow.parquet") as answer:
        assert answer.status_code == 200 and answer.get_data() == stored["Body"].read()


def test_an_archive_that_cannot_be_reached_is_said_on_the_page(front_settings, engine, monkeypatch):  # noqa: F811
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "sim-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sim-secret-key")
    location = {
        "archive_dir": "s3://grow-archive",
        "archive_s3_endpoint_url": f"http://127.0.0.1:{closed}",
        "archive_s3_attempts": 1,  # refused at once, not after AWS's back-off
    }
    app = create_front_end(load_settings(**front_settings, **location))
    accounts.create_user(engine, "ada", PASSWORD, "admin")
    admin = app.test_client()
    log_in(admin, "ada")
    page = admin.get("/archive")
    assert page.status_code == 503
    assert "the archive at s3://grow-archive" in page.get_data(as_text=True)

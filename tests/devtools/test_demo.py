"""`make demo` on a host that holds production settings in its shell: it never touches them."""

from email import message_from_bytes, policy

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select

from core.schema import sensors
from devtools import demo

# What an operator's shell holds after the guide's `set -a && . /etc/grow-wow.env` on the EC2 host.
# Nothing listens on port 9, and no AWS credentials exist here: a demo that used either would fail.
PRODUCTION = {
    "DATABASE_URL": "postgresql://grow:secret@127.0.0.1:9/production",
    "USE_AWS_SECRETS": "true",
    "AWS_DB_SECRET": "grow-data-key",
}


@pytest.fixture(autouse=True)
def demo_folders(tmp_path, monkeypatch):
    """The demo's network and its mailbox in the test's own folder, never under var/."""
    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path / "network")
    monkeypatch.setattr(demo, "DEMO_MAIL_DIR", tmp_path / "mail")


@pytest.mark.slow  # a whole demo night and its SMTP server (7 s)
def test_the_demo_mails_its_owner_the_alert_and_says_where_to_read_it(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_DATABASE", tmp_path / "demo.sqlite")
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "old.eml").write_text(
        "a mail of an earlier run, its links signed with a key now gone"
    )
    result = CliRunner().invoke(demo.main, ["--sensors", "30", "--days", "8", "--no-serve"], env=PRODUCTION)
    assert result.exit_code == 0, result.output
    assert f"in {tmp_path / 'mail'}/ (.eml files" in result.output
    mails = [
        message_from_bytes(path.read_bytes(), policy=policy.default)
        for path in (tmp_path / "mail").glob("*.eml")
    ]
    assert not (tmp_path / "mail" / "old.eml").exists()
    alerts = [mail for mail in mails if mail["To"] == "demo-owner@example.org"]
    assert len(alerts) == 1, result.output
    text = alerts[0].get_content()
    assert "Charts: http://127.0.0.1:5000/sensors/" in text
    assert "Stop these mails: http://127.0.0.1:5000/unsubscribe/" in text


def test_the_demo_uses_its_own_sqlite_file_whatever_the_shell_holds(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_DATABASE", tmp_path / "demo.sqlite")
    result = CliRunner().invoke(demo.main, ["--sensors", "4", "--days", "2", "--no-serve"], env=PRODUCTION)
    assert result.exit_code == 0, result.output
    assert "production" not in result.output and "secret" not in result.output
    assert str(tmp_path / "demo.sqlite") in result.output
    with create_engine(f"sqlite:///{tmp_path / 'demo.sqlite'}").connect() as connection:
        assert connection.scalar(select(func.count()).select_from(sensors)) == 4


def test_the_demo_goes_elsewhere_only_when_told_to(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_DATABASE", tmp_path / "unused.sqlite")
    chosen = tmp_path / "chosen.sqlite"
    arguments = ["--sensors", "3", "--days", "2", "--no-serve", "--database-url", f"sqlite:///{chosen}"]
    result = CliRunner().invoke(demo.main, arguments, env=PRODUCTION)
    assert result.exit_code == 0, result.output
    assert chosen.exists() and not (tmp_path / "unused.sqlite").exists()


def test_the_demo_shows_the_network_as_opensensemap_boxes_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_DATABASE", tmp_path / "demo.sqlite")
    arguments = ["--sensors", "3", "--days", "2", "--no-serve", "--source", "opensensemap"]
    result = CliRunner().invoke(demo.main, arguments, env=PRODUCTION)
    assert result.exit_code == 0, result.output
    with create_engine(f"sqlite:///{tmp_path / 'demo-opensensemap.sqlite'}").connect() as connection:
        ids = connection.execute(select(sensors.c.sensor_id)).scalars().all()
    assert len(ids) == 3 and all(sensor_id.startswith("osem:") for sensor_id in ids)
    assert not (tmp_path / "demo.sqlite").exists()  # the GROW demo's database is left as it was

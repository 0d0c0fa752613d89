"""`make demo` on a host that holds production settings in its shell: it never touches them."""

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


def test_the_demo_uses_its_own_sqlite_file_whatever_the_shell_holds(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_DATABASE", tmp_path / "demo.sqlite")
    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path / "network")
    result = CliRunner().invoke(demo.main, ["--sensors", "4", "--days", "2", "--no-serve"], env=PRODUCTION)
    assert result.exit_code == 0, result.output
    assert "production" not in result.output and "secret" not in result.output
    assert str(tmp_path / "demo.sqlite") in result.output
    with create_engine(f"sqlite:///{tmp_path / 'demo.sqlite'}").connect() as connection:
        assert connection.scalar(select(func.count()).select_from(sensors)) == 4


def test_the_demo_goes_elsewhere_only_when_told_to(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_DATABASE", tmp_path / "unused.sqlite")
    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path / "network")
    chosen = tmp_path / "chosen.sqlite"
    arguments = ["--sensors", "3", "--days", "2", "--no-serve", "--database-url", f"sqlite:///{chosen}"]
    result = CliRunner().invoke(demo.main, arguments, env=PRODUCTION)
    assert result.exit_code == 0, result.output
    assert chosen.exists() and not (tmp_path / "unused.sqlite").exists()


def test_the_demo_shows_the_network_as_opensensemap_boxes_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_DATABASE", tmp_path / "demo.sqlite")
    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path / "network")
    arguments = ["--sensors", "3", "--days", "2", "--no-serve", "--source", "opensensemap"]
    result = CliRunner().invoke(demo.main, arguments, env=PRODUCTION)
    assert result.exit_code == 0, result.output
    with create_engine(f"sqlite:///{tmp_path / 'demo-opensensemap.sqlite'}").connect() as connection:
        ids = connection.execute(select(sensors.c.sensor_id)).scalars().all()
    assert len(ids) == 3 and all(sensor_id.startswith("osem:") for sensor_id in ids)
    assert not (tmp_path / "demo.sqlite").exists()  # the GROW demo's database is left as it was

"""Deployment as in 2019: the Beanstalk bundles serve on their own, and the crontab line runs the runner."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from core.db import init_db, make_engine
from etl.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy"))
import bundle  # noqa: E402

# Run inside an unzipped bundle, with the nightly-only packages made unimportable: the bundle's
# requirements leave them out, so the app must start without them.
CHECK = """
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"tensorflow", "keras", "sklearn", "matplotlib"}:
            raise ImportError(f"{name} is not in the bundle's requirements")
sys.meta_path.insert(0, Missing())
from application import application
import core
assert core.__file__.startswith(sys.argv[1]), core.__file__  # the bundle's copy, not this checkout's
print(application.test_client().get(sys.argv[2]).status_code)
"""


@pytest.mark.parametrize("app", ["back_end", "front_end"])
def test_a_bundle_holds_its_app_core_a_procfile_and_the_web_pins(tmp_path, app):
    with zipfile.ZipFile(bundle.build(app, tmp_path / "bundles")) as archive:
        names = archive.namelist()
        procfile = archive.read("Procfile").decode()
        pins = archive.read("requirements.txt").decode()
    assert {"application.py", "Procfile", "requirements.txt", "core/schema.py"} <= set(names)
    package = bundle.APPS[app][0]
    assert {name.split("/")[0] for name in names if "/" in name} == {package, "core"}
    assert "gunicorn" in procfile and "application:application" in procfile
    assert "gunicorn==" in pins and "tensorflow" not in pins and "Flask==" in pins


@pytest.mark.parametrize("app", ["back_end", "front_end"])
def test_a_bundle_holds_only_the_files_git_tracks(tmp_path, app):
    """A stray `.env` (or any file git does not track) in the app's folder stays out of the bundle."""
    package = bundle.APPS[app][0]
    strays = [ROOT / package / ".env", ROOT / "core" / "notes-not-committed.txt"]
    made = [path for path in strays if not path.exists()]
    for path in made:
        path.write_text("DATABASE_URL=postgresql://grow:the-production-password@db/grow\n")
    try:
        with zipfile.ZipFile(bundle.build(app, tmp_path / "bundles")) as archive:
            names = set(archive.namelist())
    finally:
        for path in made:
            path.unlink()
    tracked = subprocess.run(
        [shutil.which("git"), "ls-files", package, "core"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert names == {"application.py", "Procfile", "requirements.txt", *tracked}


@pytest.mark.slow  # a subprocess each
@pytest.mark.parametrize(("app", "health"), [("back_end", "/api/v1/health"), ("front_end", "/health")])
def test_a_bundle_unzips_into_an_app_that_answers_its_health_route(tmp_path, app, health):
    site = tmp_path / "site"
    with zipfile.ZipFile(bundle.build(app, tmp_path / "bundles")) as archive:
        archive.extractall(site)
    database = f"sqlite:///{tmp_path / 'web.sqlite'}"
    init_db(make_engine(load_settings(database_url=database)))
    env = {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": database,
        "BACKEND_TOKEN": "token",
        "FRONTEND_SECRET_KEY": "key",
        "BACKEND_URL": "http://127.0.0.1:9",
    }
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(site), health],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # The back end answers 200; the front end says 503 because its back end (port 9) is down — it answered.
    assert result.stdout.strip() == ("200" if app == "back_end" else "503")


@pytest.mark.slow  # a subprocess
def test_the_guides_first_account_command_creates_the_account(tmp_path):
    """deploy/README.md's account command, as typed on the EC2 host after its environment file (here one
    naming a scratch database), with the password typed at its prompt."""
    guide = (ROOT / "deploy" / "README.md").read_text()
    command = next(line for line in guide.splitlines() if "users create" in line and "flask --app" in line)
    database = f"sqlite:///{tmp_path / 'accounts.sqlite'}"
    init_db(make_engine(load_settings(database_url=database)))
    command = command.replace(".venv/bin/flask", f"{sys.executable} -m flask")
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": database}  # no FRONTEND_SECRET_KEY on that host
    typed = "a long enough password\n" * 2  # the password and its confirmation
    result = subprocess.run(
        ["/bin/bash", "-c", command],
        cwd=ROOT,
        env=env,
        input=typed,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "created admin ada" in result.stdout
    assert "a long enough password" not in result.stdout + result.stderr

"""Build the Elastic Beanstalk source bundles of the two web apps, as 2019 deployed them.

    python deploy/bundle.py [--out var/bundles]

Each zip holds `application.py` at its root (Beanstalk's Python platform serves its `application`), the
packages the app imports and nothing else, only their files git tracks: its own and the shared `core`
(settings, schema, database: never copied into the apps; the import contracts in pyproject.toml keep the
web apps off every other package), a Procfile that runs gunicorn, and a requirements.txt with the pins
of the project's own, less what only the nightly job needs (TensorFlow, Keras, scikit-learn, matplotlib).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NIGHTLY_ONLY = ("tensorflow-cpu", "keras", "scikit-learn", "matplotlib")
GUNICORN = "gunicorn --bind :8000 --workers 2 --worker-class gthread --threads 4 --access-logfile -"
APPS = {
    "back_end": ("flask_back_end", "the JSON back end (health: /api/v1/health)"),
    "front_end": ("flask_front_end", "the dashboard (health: /health)"),
}
SHARED = ("core",)  # the layer below the web apps


def web_requirements(text: str) -> str:
    """requirements.txt less the packages only the nightly job imports."""
    pins = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    kept = [pin for pin in pins if pin.split("==")[0].lower() not in NIGHTLY_ONLY]
    return (
        "# The project's pins (requirements.txt) less what only the nightly job needs.\n"
        + "\n".join(kept)
        + "\n"
    )


def package_files(package: str):
    """The package's files that git tracks, as they are in the work tree: never a file git does not know
    (a stray `.env`, an editor's backup, a local database), whatever .gitignore says."""
    git = shutil.which("git")
    if git is None:
        raise SystemExit("bundles are built from a git checkout, and git is not installed")
    try:
        listed = subprocess.run(  # noqa: S603 - git with our own arguments
            [git, "ls-files", "-z", "--", package], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"bundles are built from a git checkout (git ls-files failed: {exc})") from None
    for name in sorted(filter(None, listed.decode().split("\0"))):
        path = ROOT / name
        if path.is_file():  # tracked but deleted in the work tree: left out
            yield path


def build(app: str, out: Path) -> Path:
    package, about = APPS[app]
    out.mkdir(parents=True, exist_ok=True)
    bundle = out / f"grow_wow_{app}.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "application.py",
            f'"""Elastic Beanstalk serves `application`: {about}."""\n\n'
            f"from {package}.application import application  # noqa: F401\n",
        )
        archive.writestr("Procfile", f"web: {GUNICORN} application:application\n")
        archive.writestr("requirements.txt", web_requirements((ROOT / "requirements.txt").read_text()))
        for name in (package, *SHARED):
            for path in package_files(name):
                archive.write(path, path.relative_to(ROOT).as_posix())
    return bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bundles")
    args = parser.parse_args()
    for app in APPS:
        bundle = build(app, args.out)
        print(f"{bundle}  ({bundle.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()

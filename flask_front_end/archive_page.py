"""The open-data archive for an admin (issue 34): the days `python -m etl archive` wrote (ARCHIVE_DIR, the
folder the back end reads too), newest first, each day and source a Parquet file to download, with the
manifest of checksums and the licence. Only admins: an owner account sees a 404, as for any page not
theirs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from flask import Blueprint, abort, render_template, send_file
from flask_login import current_user

from core.archive import day_path
from core.vocabulary import SOURCE_PREFIXES
from flask_front_end import extensions

archive = Blueprint("archive", __name__)

SOURCES = ("grow", *SOURCE_PREFIXES.values())
LISTED_DAYS = 400  # a year and some: older days are in the manifest, and in the folder


def _root() -> Path | None:
    if not current_user.is_admin:
        abort(404)
    folder = extensions.settings().archive_dir
    return Path(folder) if folder else None


def _manifest(root: Path) -> dict:
    path = root / "manifest.json"
    return json.loads(path.read_text())["files"] if path.exists() else {}


def days(files: dict) -> list[dict]:
    """The manifest's entries by day, newest first: each day's sources with their rows, bytes and
    checksum."""
    by_day: dict[str, list[dict]] = {}
    for entry in files.values():
        by_day.setdefault(entry["day"], []).append(entry)
    return [
        {"day": day, "files": sorted(by_day[day], key=lambda entry: entry["source"])}
        for day in sorted(by_day, reverse=True)[:LISTED_DAYS]
    ]


@archive.get("/archive")
def page():
    root = _root()
    files = _manifest(root) if root else {}
    listed = days(files)
    return render_template(
        "archive.html",
        configured=root is not None,
        days=listed,
        readings=sum(entry["rows"] for entry in files.values()),
        size=sum(entry["bytes"] for entry in files.values()),
        more=max(0, len({entry["day"] for entry in files.values()}) - len(listed)),
    )


@archive.get("/archive/files/<day>/<source>.parquet")
def day_file(day: str, source: str):
    root = _root()
    try:
        when = dt.date.fromisoformat(day)
    except ValueError:
        abort(404)
    if root is None or source not in SOURCES:
        abort(404)
    relative = day_path(when, source)
    if relative not in _manifest(root) or not (root / relative).is_file():
        abort(404)
    return send_file(root / relative, mimetype="application/vnd.apache.parquet", as_attachment=True,
                     download_name=f"grow-wow_{day}_{source}.parquet")  # fmt: skip


@archive.get("/archive/<any('manifest.json', 'LICENCE.txt'):name>")
def beside(name: str):
    root = _root()
    if root is None or not (root / name).is_file():
        abort(404)
    return send_file(root / name, as_attachment=True, download_name=f"grow-wow_{name}")

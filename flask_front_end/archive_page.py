"""The open-data archive for an admin (issue 34): the days `python -m etl archive` wrote (ARCHIVE_DIR, the
folder the back end reads too), newest first, each day and source a Parquet file to download, with the
manifest of checksums and the licence. Only admins: an owner account sees a 404, as for any page not
theirs."""

from __future__ import annotations

import datetime as dt
import json

from flask import Blueprint, Response, abort, render_template
from flask_babel import gettext
from flask_login import current_user

from core.archive import ArchiveError, ArchiveStore, day_path
from core.vocabulary import SOURCE_PREFIXES
from flask_front_end import extensions

archive = Blueprint("archive", __name__)

SOURCES = ("grow", *SOURCE_PREFIXES.values())
LISTED_DAYS = 400  # a year and some: older days are in the manifest, and in the folder


def _root() -> ArchiveStore | None:
    if not current_user.is_admin:
        abort(404)
    return extensions.settings().archive_store


def _manifest(root: ArchiveStore) -> dict:
    return json.loads(root.read_bytes("manifest.json"))["files"] if root.exists("manifest.json") else {}


def _download(root: ArchiveStore, relative: str, mimetype: str, name: str) -> Response:
    """A file of the archive streamed to the browser (a day of a large network is tens of MB), from a
    folder or S3 alike."""
    answer = Response(root.stream(relative), mimetype=mimetype)
    answer.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return answer


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


@archive.errorhandler(ArchiveError)
def _unreachable(error: ArchiveError):
    return render_template("error.html", title=gettext("Archive unavailable"), message=str(error)), 503


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
    if relative not in _manifest(root) or not root.exists(relative):
        abort(404)
    return _download(root, relative, "application/vnd.apache.parquet", f"grow-wow_{day}_{source}.parquet")


@archive.get("/archive/<any('manifest.json', 'LICENCE.txt'):name>")
def beside(name: str):
    root = _root()
    if root is None or not root.exists(name):
        abort(404)
    mimetype = "application/json" if name.endswith(".json") else "text/plain"
    return _download(root, name, mimetype, f"grow-wow_{name}")

"""The open-data archive as every role sees it: where it lives (a folder, or an S3 bucket), how its files
are written and where each lies in it (the nightly job writes them, `etl.archive`), and a sensor's
readings read back from them (the back end's ranges that reach past what the database keeps)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pyarrow as pa
from pydantic import Field, field_validator

from core.errors import GrowWowError
from core.settings import CoreSettings, http_url
from core.vocabulary import SENSOR_VARIABLES

VARIABLES = list(SENSOR_VARIABLES)
# Of the manifest and the files' columns; a change of either is a new number. 2: values as float64, as the
# database holds them (format 1 kept float32, and a daily mean's 15 digits became 7 once its month left
# the database).
FORMAT = 2
MANIFEST = "manifest.json"
SCHEMA = pa.schema(
    [
        pa.field("sensor_id", pa.string()),
        pa.field("ts", pa.timestamp("ms", tz="UTC")),
        *(pa.field(name, pa.float64()) for name in VARIABLES),  # as stored: a daily mean keeps 15 digits
        pa.field("anomalies", pa.string(), metadata={"description": "kinds of anomaly over it, ';'-joined"}),
        pa.field("health", pa.string(), metadata={"description": "its sensor that day: faulty or healthy"}),
    ]
)
# Readings a row group holds: its statistics (sensor ids, times) let a reader of one sensor skip the rest
# of a file; 20,000 is about 200 sensors' day.
ROW_GROUP = 20_000


def parquet_options() -> dict:
    """How every file of the archive is written: zstd, floats split by byte stream, times as deltas,
    statistics for the sensor and the time (the writer sorts by both): a reading costs a few bytes
    (`benchmarks/bench_scale.py`). A new dict each time: pyarrow adds to the encodings it is given."""
    return {
        "compression": "zstd",
        "compression_level": 9,
        "use_dictionary": ["sensor_id", "anomalies", "health"],
        "column_encoding": {"ts": "DELTA_BINARY_PACKED", **dict.fromkeys(VARIABLES, "BYTE_STREAM_SPLIT")},
        "write_statistics": ["sensor_id", "ts"],
        "row_group_size": ROW_GROUP,
    }


class ArchiveError(GrowWowError):
    """The archive could not be reached or read: its location and why, in one line."""


class ArchiveSettings(CoreSettings):
    """Where the archive lives, for each role that writes or reads it (the nightly job, the back end, the
    dashboard)."""

    archive_dir: str | None = Field(
        default=None,
        description="where python -m etl archive writes and the back end and dashboard read: a folder, or "
        "s3://bucket/prefix (credentials as for any AWS call: the instance's role, or the environment)",
    )
    archive_s3_endpoint_url: str | None = Field(
        default=None,
        description="the S3 service to use instead of AWS's (a MinIO, or a simulator on loopback)",
    )

    archive_s3_attempts: int = Field(
        default=3,
        ge=1,
        description="how many times an S3 request is tried before the archive is called unreachable "
        "(AWS's standard retries, with their back-off)",
    )

    @field_validator("archive_s3_endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @cached_property
    def archive_store(self) -> ArchiveStore | None:
        """The archive these settings name, or None when none is set."""
        return self.open_archive(self.archive_dir) if self.archive_dir else None

    def open_archive(self, location: str | Path) -> ArchiveStore:
        """The archive at `location` (a folder or s3://...), reached as these settings say."""
        return open_store(location, self.archive_s3_endpoint_url, self.aws_region, self.archive_s3_attempts)


class ArchiveStore:
    """An archive's files through pyarrow's file systems, the same calls for a folder and an S3 bucket:
    paths are relative to the archive's root, with '/' between parts."""

    def __init__(self, filesystem, base: str, label: str):
        self.filesystem = filesystem
        self.base = base.rstrip("/")
        self.label = label  # for messages: the folder or s3:// address as configured

    def __str__(self) -> str:
        return self.label

    def path(self, relative: str) -> str:
        return f"{self.base}/{relative}"

    def exists(self, relative: str) -> bool:
        from pyarrow import fs

        return self._call(lambda: self.filesystem.get_file_info(self.path(relative)).type == fs.FileType.File)

    def read_bytes(self, relative: str) -> bytes:
        def read():
            with self.filesystem.open_input_stream(self.path(relative)) as stream:
                return stream.read()

        return self._call(read)

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Write a whole file, atomically: a reader sees the old file or the new one, never half of
        either (an S3 object appears only once uploaded whole; a local file is written under a temporary
        name and renamed)."""
        target = self.path(relative)

        def write():
            if self.is_local:  # (S3 has no folders: pyarrow would leave an empty marker object for each)
                self.filesystem.create_dir(target.rsplit("/", 1)[0], recursive=True)
                partial = target + ".partial"
                with self.filesystem.open_output_stream(partial) as stream:
                    stream.write(data)
                os.replace(partial, target)
            else:
                with self.filesystem.open_output_stream(target) as stream:
                    stream.write(data)

        self._call(write)

    def sha256(self, relative: str) -> str:
        def digest():
            found = hashlib.sha256()
            with self.filesystem.open_input_stream(self.path(relative)) as stream:
                while block := stream.read(1 << 20):
                    found.update(block)
            return found.hexdigest()

        return self._call(digest)

    def stream(self, relative: str, block: int = 1 << 20):
        """A file's bytes in blocks, for a download that never holds the whole file."""
        with self._call(lambda: self.filesystem.open_input_stream(self.path(relative))) as stream:
            while chunk := stream.read(block):
                yield chunk

    def delete(self, relative: str) -> None:
        self._call(lambda: self.filesystem.delete_file(self.path(relative)))

    @property
    def is_local(self) -> bool:
        return self.filesystem.type_name == "local"

    def _call(self, action):
        try:
            return action()
        except FileNotFoundError:
            raise
        except OSError as error:  # pyarrow's S3 errors are OSErrors naming the request and the answer
            raise ArchiveError(f"the archive at {self.label}: {error}".splitlines()[0]) from None


def open_store(
    location: str | Path, s3_endpoint_url: str | None = None, region: str | None = None, attempts: int = 3
):
    """The archive at `location`: a folder or s3://bucket/prefix (each request tried `attempts` times)."""
    from pyarrow import fs

    location = str(location)
    if location.startswith("s3://"):
        parts = urlsplit(location)
        if not parts.netloc:
            raise ArchiveError(f"{location}: an S3 archive is s3://bucket or s3://bucket/prefix")
        # Seconds, not AWS's minutes: a night's job or a chart waits on a hung S3 no longer than this.
        options = {"region": region, "connect_timeout": 10, "request_timeout": 60} if region else {}
        options["retry_strategy"] = fs.AwsStandardS3RetryStrategy(max_attempts=attempts)
        if s3_endpoint_url:
            endpoint = urlsplit(s3_endpoint_url)
            options.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme)
        filesystem = fs.S3FileSystem(**options)
        return ArchiveStore(filesystem, f"{parts.netloc}{parts.path}".rstrip("/"), location)
    folder = Path(location).resolve()  # made by the first file written to it
    return ArchiveStore(fs.LocalFileSystem(), folder.as_posix(), location)


def as_store(root) -> ArchiveStore:
    """An archive store as given, or the folder (or s3:// address) named."""
    return root if isinstance(root, ArchiveStore) else open_store(root)


def day_path(day: dt.date, source: str) -> str:
    """A day and source's file, relative to the archive's root (Hive-style partitions)."""
    return f"readings/day={day.isoformat()}/source={source}/readings.parquet"


def month_key(month: dt.date, source: str) -> str:
    return f"{month:%Y-%m}/{source}"


def month_path(month: dt.date, source: str, bucket: int, buckets: int) -> str:
    """One of a finished month's files by sensor (`etl.archive_months`): the sensors whose bucket it is."""
    return f"sensors/month={month:%Y-%m}/source={source}/bucket={bucket:04d}-of-{buckets:04d}.parquet"


def bucket_of(sensor_id: str, buckets: int) -> int:
    """Which of a month's files holds a sensor: the first 32 bits of its id's MD5 (BUCKET_SQL in DuckDB)."""
    spread = hashlib.md5(sensor_id.encode(), usedforsecurity=False)  # a spread, not a secret
    return int(spread.hexdigest()[:8], 16) % buckets


BUCKET_SQL = "('0x' || substr(md5(sensor_id), 1, 8))::UBIGINT % {buckets}"


def write_manifest(root: ArchiveStore, manifest: dict) -> None:
    root.write_bytes(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())


def read_manifest(root) -> dict:
    """The archive's manifest: `files`, each day and source's file; `months`, each finished month's files
    by sensor."""
    root = as_store(root)
    if not root.exists(MANIFEST):
        return {"format": FORMAT, "files": {}, "months": {}}
    manifest = json.loads(root.read_bytes(MANIFEST))
    if manifest.get("format") != FORMAT:
        found = manifest.get("format")
        raise ArchiveError(
            f"{root.path(MANIFEST)}: an archive of format {found}, not {FORMAT}: archive into a new place"
        )
    manifest.setdefault("months", {})  # (an archive written before months were kept by sensor)
    return manifest


def files_to_read(manifest: dict, sensor_id: str, source: str, start: dt.date, end: dt.date) -> list[str]:
    """The archive's files that hold a sensor's readings from `start` to `end`: a finished month's one file
    by sensor where the month has them, else each day's file: a year is 12 files, not 365 (each day's
    file of a large network has hundreds of row groups to look through for one sensor)."""
    files, day = [], start
    while day <= end:
        month = day.replace(day=1)
        following = (month + dt.timedelta(days=32)).replace(day=1)
        entry = manifest["months"].get(month_key(month, source))
        if entry:
            path = month_path(month, source, bucket_of(sensor_id, entry["buckets"]), entry["buckets"])
            files += [path] if path in entry["files"] else []
            day = following
            continue
        path = day_path(day, source)
        files += [path] if path in manifest["files"] else []
        day += dt.timedelta(days=1)
    return files


def read_sensor(root, sensor_id: str, source: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """A sensor's archived readings from `start` to `end` (both included), in time order: ts and the
    variables. Only the files that hold the days asked are opened (`files_to_read`), and in them only the
    row groups that can hold the sensor (each file is sorted by sensor, with statistics)."""
    import pyarrow.dataset as ds

    store = as_store(root)
    columns = ["ts", *VARIABLES]
    wanted = files_to_read(read_manifest(store), sensor_id, source, start.date(), end.date())
    files = [store.path(path) for path in wanted]
    if not files:
        return pd.DataFrame(columns=columns)
    # pyarrow's scanner skips every row group whose statistics cannot hold the sensor or the times (DuckDB
    # over the same files read them all: its filter did not reach pyarrow's scan; 2.2 s against 0.4 s for
    # a year of 2,000 sensors' months, measured under load).
    moment = pa.timestamp("ms", tz="UTC")
    wanted_rows = (
        (ds.field("sensor_id") == sensor_id)
        & (ds.field("ts") >= pa.scalar(start, type=moment))
        & (ds.field("ts") <= pa.scalar(end, type=moment))
    )
    table = ds.dataset(files, format="parquet", schema=SCHEMA, filesystem=store.filesystem).to_table(
        columns=columns, filter=wanted_rows
    )
    frame = table.to_pandas().sort_values("ts", ignore_index=True)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame

"""The nightly job's settings: the sources it reads, how hard it tries, and the knobs of each step."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from core.archive import ArchiveSettings
from core.aws_secrets import SecretStore
from core.mail import MailSettings
from core.settings import https_url, load_role_settings
from core.times import as_utc
from detection.checks import DEFAULT_CHECKS

SENSOR_SOURCES = ("grow", "opensensemap", "files")  # etl.sources.sensor_sources makes their clients


class EtlSettings(MailSettings, ArchiveSettings):
    """Everything the steps and the `python -m etl` commands read from the environment."""

    role: ClassVar[str] = "the nightly job"

    grow_api_url: str = "https://grow.thingful.net/api"
    grow_api_key: SecretStr | None = None
    wow_api_url: str = "https://apimgmt.www.wow.metoffice.gov.uk/api"
    wow_api_key: SecretStr | None = None
    google_api_key: SecretStr | None = None
    google_api_url: str = "https://maps.googleapis.com"
    sensor_sources: str = Field(
        default="grow",
        description="where the sensors come from, comma-separated: grow, opensensemap, files",
    )
    osem_api_url: str = "https://api.opensensemap.org"
    osem_bbox: str | None = Field(
        default=None,
        description="openSenseMap boxes inside lon_sw,lat_sw,lon_ne,lat_ne (e.g. 7.5,51.9,7.7,52.0)",
    )
    osem_grouptag: str | None = Field(default=None, description="openSenseMap boxes with this grouptag")
    files_dir: Path | None = Field(
        default=None, description="a folder of CSV and ISMN files read each night (SENSOR_SOURCES=files)"
    )
    files_mapping: Path | None = Field(
        default=None, description="what the CSV files' columns are [default: FILES_DIR/mapping.json]"
    )
    osem_box_ids: str | None = Field(
        default=None,
        description="openSenseMap boxes by id, comma-separated (the bbox and grouptag are then unused)",
    )

    http_timeout_s: float = Field(
        default=30.0, gt=0, description="seconds to connect, and to wait for each piece of an answer"
    )
    http_deadline_s: float = Field(
        default=120.0,
        gt=0,
        description="seconds one attempt of a call may take in all, however slowly its answer trickles in",
    )
    http_attempts: int = Field(default=5, ge=1, le=20, description="tries per call before giving up")
    http_backoff_s: float = Field(
        default=0.5, ge=0, description="first wait between tries; doubles each time"
    )
    fetch_workers: int = Field(default=4, ge=1, le=32, description="concurrent requests to one API")
    grow_processes: int = Field(
        default=2, ge=1, le=16, description="processes checking GROW's answers side by side (PostgreSQL)"
    )
    wow_live_hours: float = Field(
        default=24.0, gt=0, description="a station is live if it reported this recently"
    )
    wow_stations_file: Path | None = Field(
        default=None, description="saved byversion answer used as fallback"
    )

    etl_now: dt.datetime | None = Field(
        default=None, description="run as if it were this time (replays, tests)"
    )
    link_max_km: float = Field(default=50.0, gt=0, description="no station link beyond this distance")
    extract_overlap_hours: float = Field(
        default=6.0, ge=0, description="hours before each station's watermark read again"
    )
    extract_reread_days: float = Field(
        default=3.0,
        ge=0,
        description="days of each sensor's readings read again every night: phones upload days late",
    )
    future_tolerance_hours: float = Field(
        default=1.0, ge=0, description="a sample stamped later than now plus this is refused (a wrong clock)"
    )
    gap_give_up_days: float = Field(
        default=14.0,
        gt=0,
        description="a sensor or station held back by an incomplete answer this long is given up on",
    )
    extract_history_days: int = Field(default=365, ge=1, description="how far back a new sensor is fetched")
    faulty_days: float = Field(default=2.0, gt=0, description="faulty if the last anomaly is this recent")
    silent_days: float = Field(
        default=3.0, gt=0, description="silent if the latest reading is this old (whatever its anomalies)"
    )
    load_batch_rows: int = Field(default=200_000, ge=1000, description="rows per bulk-upsert transaction")
    detect_context_days: float = Field(
        default=2.0,
        ge=1,
        description="days before each sensor's watermark that detection reads again for context "
        "(the soil drift check needs 20 or more: the weekly `--recheck-days 45` run gives it that)",
    )
    detect_window_days: float = Field(
        default=60.0,
        ge=20,
        description="the most days of one sensor checked at once: a longer history (a first run on a "
        "year) is checked in windows of this many days, overlapping, each committed as it is done",
    )
    archive_after_days: int = Field(
        default=3,
        ge=1,
        le=60,
        description="a day is archived (python -m etl archive) once it is this many days past: late uploads "
        "have had their time",
    )
    readings_keep_months: int = Field(
        default=0,
        ge=0,
        le=1200,
        description="python -m etl archive then drops from the database the readings of whole months older "
        "than this, each once archived and verified (never one that is not); 0 keeps every reading",
    )
    archive_licence: str = Field(
        default="CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)",
        description="the licence the archive's LICENCE.txt names: the data's, as its networks publish it",
    )
    etl_memory_mb: int = Field(
        default=1500,
        ge=256,
        description="memory a step may use (MB): detection sizes its chunks of readings by it "
        "(the default suits a 4 GiB host)",
    )
    detect_checks: str = Field(
        default=DEFAULT_CHECKS,
        description="the checks detection runs: 'all', or comma-separated names or groups "
        "(`python -m etl checks` lists them); a name prefixed with - is left out. The models "
        "(unusual_day) are left out unless named: they found nothing the rules and stations missed",
    )
    detect_thresholds: str = Field(
        default="",
        description='JSON: thresholds that differ from the defaults, e.g. {"spike.air_temperature": '
        '{"threshold": 6}}; an unknown check or threshold name is an error',
    )
    models_dir: Path | None = Field(
        default=None, description="trained autoencoders to detect with (default: those shipped in models/)"
    )
    status_max_age_hours: float = Field(
        default=26.0, gt=0, description="`python -m etl status` fails when the last nightly run is older"
    )
    status_max_gaps: int = Field(
        default=50, ge=0, description="`python -m etl status` fails when more are held back by gaps"
    )
    status_max_quarantined: int = Field(
        default=50, ge=0, description="`python -m etl status` fails when the last run quarantined more"
    )
    shard_wait_minutes: float = Field(
        default=360.0,
        gt=0,
        le=1200,  # also how far back another shard's records count as tonight's: less than a day
        description="`python -m etl run --shard i/n` waits this long for every shard to finish a step",
    )

    aws_grow_secret: str = "grow-api"  # noqa: S105 - names of secrets, not secrets
    aws_wow_secret: str = "wow-api"  # noqa: S105
    aws_google_secret: str | None = Field(
        default=None,
        description="the secret holding GOOGLE_API_KEY, as grow-api holds GROW's (e.g. google-api); "
        "unset: the key from the environment, or the offline geocoder",
    )

    @field_validator("grow_api_url", "wow_api_url", "google_api_url", "osem_api_url")
    @classmethod
    def _https_url(cls, value: str) -> str:
        return https_url(value)

    @field_validator("sensor_sources")
    @classmethod
    def _known_sources(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = sorted(set(names) - set(SENSOR_SOURCES))
        if not names or unknown:
            known = ", ".join(SENSOR_SOURCES)
            raise ValueError(f"sources are {known}, comma-separated; not {', '.join(unknown) or 'none'}")
        return ",".join(dict.fromkeys(names))

    @model_validator(mode="after")
    def _sources_have_what_they_need(self):
        sources = self.sensor_sources.split(",")
        if "files" in sources and self.files_dir is None:
            raise ValueError("SENSOR_SOURCES names files: FILES_DIR must name the folder")
        if "opensensemap" in sources and not (self.osem_bbox or self.osem_grouptag or self.osem_box_ids):
            raise ValueError(
                "SENSOR_SOURCES names opensensemap: say which boxes with OSEM_BBOX, OSEM_GROUPTAG or "
                "OSEM_BOX_IDS (the whole map is tens of thousands of boxes)"
            )
        return self

    @field_validator("etl_now")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        return None if value is None else as_utc(value)

    def now(self) -> dt.datetime:
        """The present for the ETL: ETL_NOW when set, else the clock (UTC)."""
        return self.etl_now or dt.datetime.now(dt.UTC)

    def secrets_from_store(self, store: SecretStore) -> dict[str, SecretStr]:
        updates = super().secrets_from_store(store)
        for field, secret_id in (
            ("grow_api_key", self.aws_grow_secret),
            ("wow_api_key", self.aws_wow_secret),
            ("google_api_key", self.aws_google_secret),
        ):
            if secret_id and field not in self.model_fields_set:
                updates[field] = SecretStr(self.from_store(field.upper(), store.api_key, secret_id))
        return updates


def load_settings(store: SecretStore | None = None, **overrides) -> EtlSettings:
    """The nightly job's settings from the environment (see `core.settings.load_role_settings`)."""
    return load_role_settings(EtlSettings, store, **overrides)

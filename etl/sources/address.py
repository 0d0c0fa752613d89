"""Reverse geocoding: a sensor's coordinates → an address, a place and a country.

With a Google API key, Google's Geocoding API through the `googlemaps` package (its base URL is a
setting, so tests use the simulator); without one, the offline `reverse_geocode` package (GeoNames
places, shipped inside the package). Lookups are cached by coordinates, so a sensor is looked up once
per run; the sensors table keeps the answer and where it was asked, so later runs ask only for new or
moved sensors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from core.errors import SettingsError
from etl.settings import EtlSettings
from etl.sources.http import DeadlineSession, SourceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Address:
    address: str | None
    place: str | None
    country: str | None
    address_2019: str | None = None  # as 2019 wrote it: the components' long names joined by spaces


def offline_address(latitude: float, longitude: float) -> Address:
    """The nearest populated place (GeoNames) to the point, with no network."""
    import reverse_geocode

    found = reverse_geocode.get((latitude, longitude))
    parts = list(dict.fromkeys(found.get(k) for k in ("city", "state", "country") if found.get(k)))
    return Address(", ".join(parts) or None, found.get("city"), found.get("country"), " ".join(parts) or None)


def parse_google_result(results: list) -> Address:
    """The first Google result → its formatted address, locality and country, and the address as 2019
    wrote it (`get_address` in its store_sensor_info.py joined the components' long names by spaces)."""
    if not results:
        return Address(None, None, None)
    best = results[0]
    place = country = None
    for component in best.get("address_components", []):
        types = component.get("types", [])
        if place is None and ("locality" in types or "postal_town" in types):
            place = component.get("long_name")
        if "country" in types:
            country = component.get("long_name")
    components = [c.get("long_name") for c in best.get("address_components", []) if c.get("long_name")]
    return Address(best.get("formatted_address"), place, country, " ".join(components) or None)


class Geocoder:
    """Addresses for coordinates, from Google when a key is configured, else offline."""

    def __init__(self, settings: EtlSettings, google_key: str | None = None):
        key = google_key or (settings.google_api_key.get_secret_value() if settings.google_api_key else None)
        self.source = "Google" if key else "offline"
        self._client = None
        if key:
            import googlemaps

            try:
                self._client = googlemaps.Client(
                    key=key,
                    base_url=settings.google_api_url,
                    timeout=settings.http_timeout_s,
                    retry_timeout=settings.http_timeout_s * settings.http_attempts,
                    # each answer whole within the deadline, however slowly it trickles
                    requests_session=DeadlineSession(settings.http_deadline_s),
                )
            except ValueError:
                raise SettingsError("GOOGLE_API_KEY is not a Google API key (they start with AIza)") from None
        self.reverse = lru_cache(maxsize=65536)(self._reverse)

    def _reverse(self, latitude: float, longitude: float) -> Address:
        if self._client is None:
            return offline_address(latitude, longitude)
        import googlemaps.exceptions

        try:
            results = self._client.reverse_geocode((latitude, longitude))
        except googlemaps.exceptions.ApiError as exc:
            raise SourceError(f"Google geocoding of {latitude:.5f},{longitude:.5f}: {exc.status}") from None
        except (googlemaps.exceptions.TransportError, googlemaps.exceptions.Timeout) as exc:
            raise SourceError(
                f"Google geocoding of {latitude:.5f},{longitude:.5f}: {type(exc).__name__}"
            ) from None
        return parse_google_result(results)

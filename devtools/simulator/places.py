"""Where simulated sensors and stations stand: places in the countries GROW worked in, with a rough climate.

Climate figures are round numbers of the right size for each place, not data: mean and seasonal swing of
air temperature (°C), the day/night swing (°C), the chance of a rainy day and the mean rain rate while it
rains (mm/h). `uk` marks the places where WOW stations are dense.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    name: str
    country: str
    latitude: float
    longitude: float
    mean_temperature: float
    seasonal_swing: float
    daily_swing: float
    rain_day_chance: float
    rain_rate: float
    uk: bool = False


PLACES = (
    Place("Dundee", "GB", 56.462, -2.971, 8.5, 5.5, 3.5, 0.50, 1.2, uk=True),
    Place("Edinburgh", "GB", 55.953, -3.189, 9.0, 5.5, 3.5, 0.48, 1.2, uk=True),
    Place("Manchester", "GB", 53.481, -2.243, 10.0, 6.0, 4.0, 0.52, 1.4, uk=True),
    Place("Cardiff", "GB", 51.481, -3.179, 10.8, 6.0, 4.0, 0.50, 1.5, uk=True),
    Place("London", "GB", 51.507, -0.128, 11.5, 7.0, 4.5, 0.38, 1.3, uk=True),
    Place("Canterbury", "GB", 51.280, 1.079, 11.0, 7.0, 4.5, 0.36, 1.3, uk=True),
    Place("Dublin", "IE", 53.350, -6.260, 10.0, 5.0, 3.5, 0.50, 1.2),
    Place("Amsterdam", "NL", 52.370, 4.895, 10.5, 7.0, 4.0, 0.45, 1.4),
    Place("Brussels", "BE", 50.850, 4.352, 10.8, 7.5, 4.5, 0.45, 1.4),
    Place("Luxembourg", "LU", 49.612, 6.130, 9.8, 8.0, 5.0, 0.42, 1.4),
    Place("Nantes", "FR", 47.218, -1.554, 12.5, 7.0, 5.0, 0.40, 1.5),
    Place("Paris", "FR", 48.857, 2.352, 12.3, 8.0, 5.0, 0.36, 1.5),
    Place("Berlin", "DE", 52.520, 13.405, 10.0, 9.5, 5.0, 0.34, 1.5),
    Place("Vienna", "AT", 48.208, 16.373, 11.0, 10.0, 5.5, 0.33, 1.8),
    Place("Ljubljana", "SI", 46.056, 14.506, 11.0, 10.0, 6.0, 0.36, 2.2),
    Place("Szeged", "HU", 46.253, 20.148, 11.8, 11.0, 6.0, 0.28, 1.8),
    Place("Florence", "IT", 43.770, 11.256, 15.0, 9.0, 6.5, 0.27, 2.2),
    Place("Valencia", "ES", 39.470, -0.376, 18.0, 7.0, 5.0, 0.14, 3.0),
    Place("Murcia", "ES", 37.992, -1.131, 18.5, 8.0, 7.0, 0.10, 3.0),
    Place("Lisbon", "PT", 38.722, -9.139, 17.5, 5.5, 5.0, 0.22, 2.2),
    Place("Larissa", "GR", 39.639, 22.419, 16.0, 10.5, 7.0, 0.18, 2.0),
    Place("Athens", "GR", 37.984, 23.728, 18.5, 8.5, 6.0, 0.13, 2.5),
    Place("Nicosia", "CY", 35.185, 33.382, 19.5, 8.5, 7.0, 0.10, 2.5),
    Place("Riga", "LV", 56.950, 24.106, 7.0, 10.0, 5.0, 0.40, 1.3),
)

"""The physical constants of one simulated network, drawn from ranges with the network's seed.

A simulator whose constants were the detector's would score the detector against its own inverse. So no
number here is one of `detection/`'s: each is drawn, once per network, from a range that the literature
or the physics gives (the comment beside each range says where it comes from), and written into the
network's `network.json` (`physics`), so that a network is reproducible and an evaluation can say what
it was. Two seeds give two climates of snow, two soils and two makes of probe.

What varies per sensor (its soil, its probe's reporting step, how deep its probe senses) is drawn per
sensor within the network's ranges, in `generate`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

# name → (low, high): each constant is drawn uniformly between the two.
RANGES: dict[str, tuple[float, float]] = {
    # --- snow ---------------------------------------------------------------------------------------------
    # Air temperature at which half the precipitation falls as snow: 0-2 °C over land, varying by
    # humidity and region (Jennings et al. 2018, Nat. Commun. 9:1148: a Northern Hemisphere mean near 1 °C).
    "snow_threshold_c": (0.0, 2.0),
    # Half the width of the band in which rain and snow fall mixed (the US Army Corps of Engineers' 1956
    # snow hydrology puts all snow to all rain between about -1 and +3 °C).
    "snow_band_c": (0.5, 1.5),
    # Degree-day melt factor of seasonal lowland snow: 2-6 mm of water per °C per day (Hock 2003,
    # J. Hydrol. 282:104, table 1; snow ranges 2.5-11, the low end for open, low-lying sites).
    "melt_mm_per_c_day": (2.0, 6.0),
    # Base temperature of the degree-day melt: near 0 °C, a little either side by site (Hock 2003).
    "melt_base_c": (-0.5, 1.0),
    # Snow depth that covers the head of a garden sensor pushed into the soil up to its mark (cm).
    "burying_snow_cm": (4.0, 12.0),
    # Density of a shallow seasonal snowpack, fresh to settled (kg/m³; Sturm et al. 2010,
    # J. Hydrometeorol. 11:1380: 50-150 fresh, 200-350 settled): depth × density is the water that buries.
    "snow_density_kg_m3": (80.0, 250.0),
    # How much of the air's swing below 0 °C reaches a sensor under a few cm of snow: snow conducts heat
    # at 0.1-0.4 W/m/K (Sturm et al. 1997, J. Glaciol. 43:26), so a thin pack damps, a deep one cuts off;
    # and a melting pack holds 0 °C.
    "under_snow_damping": (0.1, 0.4),
    # ... with this lag (h): the snow's heat capacity.
    "under_snow_lag_hours": (2.0, 8.0),
    # --- frozen soil ---------------------------------------------------------------------------------------
    # Time constant (days) with which the top 5-10 cm of soil follows the air's daily mean: the damping
    # depth of the daily wave is about 10 cm (Hillel, Environmental Soil Physics, 1998, ch. 12).
    "soil_lag_days": (0.75, 3.0),
    # Soil water freezes a little below 0 °C: solutes and capillarity depress its freezing point by
    # 0.1-1 °C (Spaans & Baker 1996, SSSAJ 60:13).
    "freeze_c": (-1.0, -0.1),
    # Frozen soil thaws this much above its freezing point (°C): the zero curtain holds the thaw back.
    "thaw_above_freeze_c": (0.2, 0.8),
    # Hours over which a freezing probe's reading falls as its water turns to ice.
    "ice_ramp_hours": (3.0, 12.0),
    # A capacitance probe reads liquid water; ice's permittivity (about 3) is that of dry soil, so frozen
    # soil reads its unfrozen water only: 20-80 % of the reading is lost (Spaans & Baker 1996). Some
    # loggers hold the last good reading instead: the share of those.
    "ice_drop_low": (0.2, 0.4),
    "ice_drop_high": (0.5, 0.8),
    "holding_probe_share": (0.3, 0.7),
    # --- evaporation, drainage and wetting -----------------------------------------------------------------
    # Makkink's coefficient: evaporation = c · s/(s+γ) · Rs/λ (Makkink 1957; de Bruin & Lablans 1998,
    # Hydrol. Process. 12:1053: 0.61-0.65 for grass); gardens of other cover, 0.5-0.75.
    "makkink_coefficient": (0.5, 0.75),
    # Clear-sky transmissivity of the atmosphere: 0.65-0.8 (FAO-56, Allen et al. 1998, eq. 37).
    "clear_sky_transmissivity": (0.65, 0.8),
    # Evaporation at night (mm an hour): without sun, a few % of a day's (Fisher et al. 2007, Tree
    # Physiol. 27:597, night transpiration 5-15 %; soil evaporation less).
    "night_evaporation_mm_hour": (0.0, 0.015),
    # Depth of soil (mm) whose water a probe near the surface reads and roots draw from: a 10 cm probe in
    # a 10-30 cm root zone; per sensor between the two.
    "depth_low_mm": (70.0, 120.0),
    "depth_high_mm": (180.0, 300.0),
    # Field capacity as a share of the way from wilting point to saturation: 0.5-0.8 from sand to clay
    # loam (Saxton & Rawls 2006, SSSAJ 70:1569); per sensor between the two.
    "field_capacity_low": (0.5, 0.6),
    "field_capacity_high": (0.65, 0.8),
    # Evaporation dries the top soil past the wilting point, to about half of it when air-dry (FAO-56,
    # Allen et al. 1998, ch. 7: the surface layer dries to 0.5 θWP): the share of the wilting point at
    # which drying stops.
    "air_dry_share": (0.3, 0.6),
    # Rate (per day) at which the water above field capacity drains: e-folding in 16 hours to 3 days,
    # as a wetted soil is back at field capacity one to a few days after rain (Veihmeyer & Hendrickson
    # 1931, the very definition of field capacity).
    "drainage_per_day": (0.33, 1.5),
    # % of soil moisture gained per mm of rain reaching the probe: the first mm wets the top 40-150 mm
    # (100/40 to 100/150); per sensor between the two.
    "gain_low": (0.6, 1.2),
    "gain_high": (1.6, 2.6),
    # --- the probes ---------------------------------------------------------------------------------------
    # How far one instant's air temperature strays from its quarter hour's mean in a garden (°C): eddies
    # of the surface layer, 0.1-0.4 °C in the open (Stull, An Introduction to Boundary Layer
    # Meteorology, 1988, ch. 4); none under snow.
    "air_turbulence_c": (0.1, 0.4),
    # Noise of the thermometer itself (°C): a thermistor or SHT-type sensor repeats to a few hundredths.
    "thermometer_noise_c": (0.02, 0.08),
    # Noise of the light sensor, as a share of the reading.
    "light_noise_share": (0.01, 0.05),
    # Noise of the soil probe as a share of its reporting step: an ADC reading rounded to a coarser step
    # moves one step now and then where the true value lies near a step's edge, and holds otherwise.
    "soil_noise_share_of_step": (0.02, 0.12),
    # Noise of a station's thermometer (°C): AWS sensors repeat to about 0.1-0.3 °C.
    "station_air_noise_c": (0.05, 0.3),
    # How far a sensor's clock may run fast or slow (ppm; each sensor draws its own within ±this): a
    # 32.768 kHz watch crystal is cut to ±20 ppm at 25 °C and loses 0.034 ppm/°C² away from it, some
    # 20-40 ppm more in a cold garden (e.g. Epson FC-135 datasheet). The phone sets it right at each upload.
    "clock_ppm_max": (20.0, 100.0),
}

# The steps (%) that soil probes report in: loggers and firmware round volumetric water content to 0.1 %
# (TAHMO's TEROS 12, ISMN files), 0.2 % or 0.5 % (cheap capacitance probes). A network draws how common
# each is (`soil_step_weights`), and each sensor draws its own.
SOIL_STEPS = (0.1, 0.2, 0.5)
# Air temperature reports in tenths of a degree, as loggers and weather stations do.
AIR_STEP_C = 0.1
# Rain gauges of amateur stations tip at 0.2 mm (metric) or 0.01 inch (0.254 mm); a network draws how
# common each is (`rain_tip_weights`).
RAIN_TIPS_MM = (0.2, 0.254)


@dataclass(frozen=True)
class Physics:
    """One network's physical constants (see RANGES for each one's source and range)."""

    snow_threshold_c: float
    snow_band_c: float
    melt_mm_per_c_day: float
    melt_base_c: float
    burying_snow_cm: float
    snow_density_kg_m3: float
    under_snow_damping: float
    under_snow_lag_hours: float
    soil_lag_days: float
    freeze_c: float
    thaw_above_freeze_c: float
    ice_ramp_hours: float
    ice_drop_low: float
    ice_drop_high: float
    holding_probe_share: float
    makkink_coefficient: float
    clear_sky_transmissivity: float
    night_evaporation_mm_hour: float
    depth_low_mm: float
    depth_high_mm: float
    field_capacity_low: float
    field_capacity_high: float
    air_dry_share: float
    drainage_per_day: float
    gain_low: float
    gain_high: float
    air_turbulence_c: float
    thermometer_noise_c: float
    light_noise_share: float
    soil_noise_share_of_step: float
    station_air_noise_c: float
    clock_ppm_max: float
    soil_step_weights: tuple[float, ...]
    rain_tip_weights: tuple[float, ...]
    soil_steps: tuple[float, ...] = SOIL_STEPS
    air_step_c: float = AIR_STEP_C
    rain_tips_mm: tuple[float, ...] = RAIN_TIPS_MM

    @property
    def burying_snow_mm(self) -> float:
        """Water (mm) of a snowpack just deep enough to cover a sensor's head."""
        return self.burying_snow_cm * 10.0 * self.snow_density_kg_m3 / 1000.0

    @property
    def thaw_c(self) -> float:
        return self.freeze_c + self.thaw_above_freeze_c

    def as_dict(self) -> dict:
        """For network.json: every constant, with the derived ones a reader would otherwise recompute."""
        values = dataclasses.asdict(self)
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
        return {**values, "burying_snow_mm": self.burying_snow_mm, "thaw_c": self.thaw_c}

    @classmethod
    def from_dict(cls, values: dict) -> Physics:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names})


def draw_physics(seed: int) -> Physics:
    """The network's constants for `seed`, from a stream of their own (the rest of the network draws
    from others)."""
    rng = np.random.default_rng([seed, 1729])
    drawn = {name: float(rng.uniform(low, high)) for name, (low, high) in RANGES.items()}
    soil_weights = rng.dirichlet(np.ones(len(SOIL_STEPS)))
    tip_weights = rng.dirichlet(np.ones(len(RAIN_TIPS_MM)))
    return Physics(
        **drawn,
        soil_step_weights=tuple(float(w) for w in soil_weights),
        rain_tip_weights=tuple(float(w) for w in tip_weights),
    )

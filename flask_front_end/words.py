"""The words the pages and their scripts show that are not in a template: the vocabulary's names (kinds of
anomaly, variables, detectors) and every phrase a page script writes, in the page's language.

Scripts never spell English themselves: each page carries `for_scripts()` as JSON (`<body data-words>`),
and app.js's `say(key, values)` fills its `%(name)s` places; a counted phrase comes in its two forms (one,
more), and the browser's Intl.PluralRules picks one for the number.
"""

from __future__ import annotations

from flask_babel import get_translations, gettext, lazy_gettext

from core.vocabulary import SENSOR_VARIABLES, AnomalyKind, Detector

# What the legend says found each kind.
FOUND_BY = {
    Detector.RULE: lazy_gettext("found by the rule checks"),
    Detector.MODEL: lazy_gettext("found by the model checks"),
    Detector.REFERENCE: lazy_gettext("found by the reference checks"),
    Detector.CONDITION: lazy_gettext("found by the condition checks"),
}
# The detector of an anomaly, in the sensor page's table.
DETECTORS = {
    Detector.RULE: lazy_gettext("rule"),
    Detector.MODEL: lazy_gettext("model"),
    Detector.REFERENCE: lazy_gettext("reference"),
    Detector.CONDITION: lazy_gettext("condition"),
}


def kind_name(value: str) -> str:
    """A kind of anomaly in the page's words; one this code does not know, as it came."""
    try:
        return gettext(AnomalyKind(value).label)
    except ValueError:
        return value.replace("_", " ")


def variable_name(name: str) -> str:
    """A sensor's variable in the page's words (soil moisture, battery)."""
    known = SENSOR_VARIABLES.get(name)
    return gettext(known.label) if known else name.replace("_", " ")


def _phrases() -> dict:
    return {
        "since": gettext("%(status)s since %(time)s UTC"),
        "serverAnswered": gettext("the server answered %(status)s"),
        "distanceUnknown": gettext("distance unknown"),
        "kmAway": gettext("%(km)s km away"),
        "loading": gettext("Loading…"),
        "loadingSensor": gettext("Loading %(sensor)s…"),
        "noneLinked": gettext("none linked"),
        "notThroughDetection": gettext("Its readings have not been through detection yet."),
        "address": gettext("Address"),
        "wowStation": gettext("WOW station"),
        "battery": gettext("Battery"),
        "daysActive": gettext("Days active"),
        "firstReading": gettext("First reading"),
        "lastReading": gettext("Last reading"),
        "chartsLink": gettext("Charts and anomalies →"),
        "noSensorsYet": gettext(
            "No sensors to show yet: the nightly run has not loaded any with a position."
        ),
        "noSensorsOfStatus": gettext("No %(status)s sensors."),
        "noSensorsOfStatusHere": gettext("No %(status)s sensors here."),
        "notLoaded": gettext("The sensors could not be loaded: %(error)s"),
        "noSensorsFound": gettext("No sensors found."),
        "typeAddressOrOwner": gettext("Type an address or an owner id."),
        "typeAddress": gettext("Type an address."),
        "utc": gettext("UTC"),
        "local": gettext("local"),
        "localTime": gettext("local time"),
        "localTimeIn": gettext("local time, %(zone)s"),
        "max": gettext("max"),
        "min": gettext("min"),
        "loadingAnomalies": gettext("Loading the anomalies…"),
        "loadingReadings": gettext("Loading the readings, the station's and the anomalies…"),
        "downsampled": gettext("(of %(count)s readings, with each stretch's min and max)"),
        "noReadings": gettext("No %(variable)s readings in this range"),
        "noStation": gettext("No WOW station within reach"),
        "noStationBecause": gettext("No WOW station within reach (%(reason)s)"),
        "stationSentNothing": gettext("The WOW station sent nothing for this range"),
        "growTemperature": gettext("GROW air temperature (°C)"),
        "wowTemperature": gettext("WOW air temperature (°C)"),
        "growSoilMoisture": gettext("GROW soil moisture (%)"),
        "wowRainfall": gettext("WOW rainfall (mm/h)"),
        "besideStation": gettext("Hourly, beside WOW station %(station)s"),
        "againstRain": gettext("Soil moisture against the rain at %(station)s"),
        "noAnomalies": gettext("No anomalies in this range."),
        "range": gettext("%(start)s to %(end)s %(zone)s"),
        "chartsNotDrawn": gettext("The charts could not be drawn: %(error)s"),
        "notDrawn": gettext("Not drawn."),
        "notDrawnSeeAbove": gettext("Not drawn: see the message above"),
        "anomaliesNotLoaded": gettext("The anomalies could not be loaded: %(error)s"),
    }


def _counted() -> dict:
    """Phrases with a number in them: the catalogue's forms for one and for more, unfilled (the script
    fills them and picks by the number)."""
    ngettext = get_translations().ngettext
    return {
        "sensorsOnMap": [
            ngettext("%(count)s sensor on the map.", "%(count)s sensors on the map.", n) for n in (1, 2)
        ],
        "sensors": [ngettext("%(count)s sensor", "%(count)s sensors", n) for n in (1, 2)],
        "clusterTitle": [
            ngettext("%(count)s sensor: %(statuses)s", "%(count)s sensors: %(statuses)s", n) for n in (1, 2)
        ],
        "points": [
            ngettext("%(variable)s: %(count)s point", "%(variable)s: %(count)s points", n) for n in (1, 2)
        ],
        "anomaliesMarked": [
            ngettext("%(count)s anomaly marked", "%(count)s anomalies marked", n) for n in (1, 2)
        ],
        "conditions": [
            ngettext(
                "%(count)s condition (not faults, in blue)", "%(count)s conditions (not faults, in blue)", n
            )
            for n in (1, 2)
        ],
        "history": [
            ngettext(
                "%(count)s span of imported history (in grey)",
                "%(count)s spans of imported history (in grey)",
                n,
            )
            for n in (1, 2)
        ],
        "readings": [ngettext("%(count)s reading", "%(count)s readings", n) for n in (1, 2)],
        "anomalies": [ngettext("%(count)s anomaly", "%(count)s anomalies", n) for n in (1, 2)],
    }


def for_scripts() -> dict:
    """Everything the page scripts say, in the page's language."""
    return {
        **_phrases(),
        **_counted(),
        "kinds": {kind.value: gettext(kind.label) for kind in AnomalyKind},
        "variables": {name: gettext(variable.label) for name, variable in SENSOR_VARIABLES.items()},
        "charts": {
            "soil_moisture": gettext("Soil moisture"),
            "air_temperature": gettext("Air temperature"),
            "light": gettext("Light"),
            "battery_level": gettext("Battery"),
        },
        "detectors": {detector.value: str(words) for detector, words in DETECTORS.items()},
    }

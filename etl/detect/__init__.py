"""Finding faulty sensors. So far: rule checks over one sensor's readings (rules.py) and air temperature
checked against the nearest WOW station (reference.py). The LSTM models, the soil-moisture-without-rain
check, the DataFrame-level `detect` function and the detect/analyse steps come with the detection issue."""

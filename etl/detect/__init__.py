"""Finding faulty sensors: rule checks (rules.py); models and the reference check against WOW stations
come with the detection issue."""

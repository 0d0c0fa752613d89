"""Finding faulty sensors, on DataFrames and without a database: rule checks over one sensor's series
(`rules`), the per-variable autoencoders (`autoencoder`, `model`) and the nearest WOW station as witness
(`reference`), all behind `detection.detect.detect`. The nightly step and notebooks both use it."""

"""A deterministic simulated GROW network with WOW stations, served over the real HTTP APIs.

Nobody can reach the real services from here (and Thingful's GROW service is gone), so the demo, the tests
and the benchmarks run on this: `generate` writes a network to a folder, `serve` answers the GROW and WOW
APIs (and Google reverse geocoding) from it, `plot` draws a clean and a faulty sensor beside their station.
"""

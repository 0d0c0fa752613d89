"""The remote sources, one module each: `grow` (sensors and readings), `wow` (weather stations),
`address` (reverse geocoding). `http` holds the retry and error handling they share."""

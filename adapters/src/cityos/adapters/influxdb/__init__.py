"""InfluxDB TimeSeriesStore over the v1-compatible HTTP API (1.x natively, 2.x / 3.x compat)."""

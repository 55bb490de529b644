"""Observations: time-series reads for one sensor."""

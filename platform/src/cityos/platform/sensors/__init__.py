"""Sensors: listing and lookup, filtered by the caller's domain scopes."""

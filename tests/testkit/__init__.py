"""Helpers for cityos tests: real services started per test run, skip-or-fail rules."""

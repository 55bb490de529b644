"""The embedded SQLite time-series store: cityos's zero-setup default `TimeSeriesStore`."""

from cityos.adapters.sqlite_store.store import SqliteTimeSeriesStore, create_store

__all__ = ["SqliteTimeSeriesStore", "create_store"]

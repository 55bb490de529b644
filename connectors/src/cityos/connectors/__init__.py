"""cityos connectors: pull-based importers of administrative open data."""

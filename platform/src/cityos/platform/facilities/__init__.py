"""Facilities and datasets from administrative data: visibility, filters, distance, paging."""

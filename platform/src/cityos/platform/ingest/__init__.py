"""Sensor ingestion: topic routing, decoding, validation, batching, ack-after-write."""

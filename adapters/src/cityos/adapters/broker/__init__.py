"""Embedded MQTT brokers started by cityos when no external broker is configured."""

"""MQTT adapters (paho-mqtt): the ingest worker's message source and a publisher."""

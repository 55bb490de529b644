"""cityos adapters: the edges to outside technology (SQL, InfluxDB, MQTT, payload formats)."""

"""cityos core: domain model, ports, ingestion pipeline, query services, GraphQL/HTTP API, CLI."""

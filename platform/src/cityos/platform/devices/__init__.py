"""Device registry: registration, credentials."""

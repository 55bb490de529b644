"""The HTTP and GraphQL API."""

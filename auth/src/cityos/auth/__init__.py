"""cityos auth: OAuth2 authorization server, token verification, scopes, clients (issue 5)."""

"""Client ids and secrets: secrets are shown once and stored only as PBKDF2-SHA256 hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 600_000
"""PBKDF2-HMAC-SHA256 work factor (OWASP's 2023 recommendation); stored with each hash."""
_SALT_BYTES = 16
_CACHE_LIMIT = 10_000


def generate_client_id() -> str:
    """A new client id: 20 lowercase hex digits (safe in HTTP Basic, URLs and shells)."""
    return secrets.token_hex(10)


def generate_client_secret() -> str:
    """A new client secret: 256 random bits, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str, *, iterations: int | None = None, salt: bytes | None = None) -> str:
    """`pbkdf2_sha256$<iterations>$<salt b64>$<digest b64>` of a secret."""
    rounds = ITERATIONS if iterations is None else iterations
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt, rounds)
    return "$".join(
        (
            ALGORITHM,
            str(rounds),
            base64.b64encode(salt).decode("ascii"),
            base64.b64encode(digest).decode("ascii"),
        )
    )


def verify_secret(secret: str, stored: str) -> bool:
    """Whether `secret` matches a hash made by `hash_secret` (compared in constant time)."""
    try:
        algorithm, rounds, salt_b64, digest_b64 = stored.split("$")
        if algorithm != ALGORITHM:
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(digest_b64, validate=True)
        actual = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt, int(rounds))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


class SecretChecker:
    """`verify_secret` with an in-process memory of recent successes.

    PBKDF2 is slow on purpose (~0.3 s); a client asking for a token every few minutes should
    not pay that each time. A success is remembered as an HMAC of the secret under a random
    per-process key, bound to the stored hash, so a rotated secret is checked afresh.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._verified: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def check(self, client_id: str, secret: str, stored: str) -> bool:
        """Whether `secret` is the secret of `client_id` whose stored hash is `stored`."""
        mac = hmac.new(self._key, secret.encode("utf-8"), hashlib.sha256).digest()
        remembered = self._verified.get((client_id, stored))
        if remembered is not None:
            return hmac.compare_digest(remembered, mac)
        if not verify_secret(secret, stored):
            return False
        with self._lock:
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[(client_id, stored)] = mac
        return True

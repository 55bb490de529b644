"""Device MQTT passwords: generated once, stored only as mosquitto-compatible PBKDF2-SHA512."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# mosquitto 2.0 reads "$7$<iterations>$<salt b64>$<hash b64>" (PBKDF2-SHA512) from its password
# file; storing the hash in that format lets `cityos mosquitto sync` write it out unchanged.
ITERATIONS = 20_000
_SALT_BYTES = 12


def generate_password() -> str:
    """A new random MQTT password (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """The mosquitto `$7$` PBKDF2-SHA512 hash of a password."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return "$7${}${}${}".format(
        iterations, base64.b64encode(salt).decode("ascii"), base64.b64encode(digest).decode("ascii")
    )


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a `$7$` hash made by `hash_password` or mosquitto_passwd."""
    try:
        _, kind, iterations, salt_b64, digest_b64 = stored.split("$")
        if kind != "7":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        actual = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)

"""Client secrets: PBKDF2-SHA256 hashes, constant-time checks, remembered successes."""

from __future__ import annotations

import re

from cityos.auth import hashing


def test_secrets_and_ids_are_random_and_shell_safe() -> None:
    secrets = {hashing.generate_client_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", secret) for secret in secrets)
    ids = {hashing.generate_client_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[0-9a-f]{20}", client_id) for client_id in ids)


def test_the_default_work_factor_is_high() -> None:
    assert hashing.ITERATIONS >= 600_000
    stored = hashing.hash_secret("s3cret", iterations=None)
    algorithm, rounds, _salt, _digest = stored.split("$")
    assert (algorithm, int(rounds)) == ("pbkdf2_sha256", hashing.ITERATIONS)


def test_hash_and_verify() -> None:
    stored = hashing.hash_secret("s3cret", iterations=1000)
    assert hashing.verify_secret("s3cret", stored)
    assert not hashing.verify_secret("s3cret ", stored)
    assert not hashing.verify_secret("", stored)
    assert hashing.hash_secret("s3cret", iterations=1000) != stored  # salted
    same_salt = hashing.hash_secret("s3cret", iterations=1000, salt=b"0" * 16)
    assert same_salt == hashing.hash_secret("s3cret", iterations=1000, salt=b"0" * 16)


def test_malformed_or_foreign_hashes_never_verify() -> None:
    stored = hashing.hash_secret("s3cret", iterations=1000)
    algorithm, rounds, salt, digest = stored.split("$")
    for bad in (
        "",
        "plain",
        f"pbkdf2_sha512${rounds}${salt}${digest}",
        f"{algorithm}$x${salt}${digest}",
        f"{algorithm}${rounds}$!!${digest}",
        f"{algorithm}${rounds}${salt}$AAAA",
        "$7$101$c2FsdA==$ZGlnZXN0",
    ):
        assert not hashing.verify_secret("s3cret", bad), bad


def test_the_checker_remembers_successes_per_stored_hash() -> None:
    checker = hashing.SecretChecker()
    stored = hashing.hash_secret("s3cret", iterations=1000)
    assert checker.check("c1", "s3cret", stored)
    assert checker.check("c1", "s3cret", stored)  # remembered
    assert not checker.check("c1", "wrong", stored)
    rotated = hashing.hash_secret("n3w", iterations=1000)
    assert not checker.check("c1", "s3cret", rotated)  # a rotated secret is checked afresh
    assert checker.check("c1", "n3w", rotated)
    assert not checker.check("c2", "s3cret", rotated)

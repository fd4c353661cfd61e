"""Secrets at rest: API tokens as keyed digests, passwords as Argon2id hashes.

Client and access tokens are long random strings, so a keyed SHA-256 digest (HMAC) is enough to
store them irreversibly and to find them by an indexed lookup; the digest found is compared again
in constant time. Passwords are low-entropy and get Argon2id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_DIGEST_KEY = b"keyledger/secret-digest/v1"
_password_hasher = PasswordHasher()


def secret_digest(secret: str) -> str:
    return hmac.new(_DIGEST_KEY, secret.encode("utf-8"), hashlib.sha256).hexdigest()


def digests_match(stored: str, presented: str) -> bool:
    return hmac.compare_digest(stored.encode("ascii"), presented.encode("ascii"))


def new_api_token() -> str:
    """A token in the shape Mews uses: 32 and 31 upper-case hex digits joined by a dash."""
    return f"{secrets.token_hex(16).upper()}-{secrets.token_hex(16).upper()[:31]}"


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def dummy_password_hash() -> str:
    """A hash no password matches, with the parameters ``hash_password`` uses: checking an
    unknown e-mail's password against it costs what a wrong password of a user costs."""
    hasher = _password_hasher

    def encoded(size: int) -> str:
        return base64.b64encode(secrets.token_bytes(size)).decode("ascii").rstrip("=")

    return (
        f"$argon2id$v=19$m={hasher.memory_cost},t={hasher.time_cost},p={hasher.parallelism}"
        f"${encoded(hasher.salt_len)}${encoded(hasher.hash_len)}"
    )


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _password_hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False

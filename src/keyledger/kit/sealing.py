"""Door credential values at rest: sealed with AES-256-GCM, found through keyed fingerprints.

A PIN or RFID number must be given back by the Mews API, so it is stored retrievably, not as a
digest. With ``KEYLEDGER_ENCRYPTION_KEY`` set, a reservation token's value is kept only *sealed*
(``value_sealed``; ``value`` holds the empty string): authenticated encryption under a key derived
from the first configured key, bound to the token's uid, so a sealed value moved to another row or
altered fails to open instead of opening to something else.

Look-ups (door checks, the collision rule) and the index find a value through its *fingerprint*
(``value_fp``): an HMAC-SHA256 of the value under a second key derived from the same configured
key, so a dump of the database does not let anyone test guesses of a 4-digit PIN offline. Without
a key the fingerprint is keyed with a public constant and the value is stored in clear.

Several keys may be configured (comma-separated): the first seals, every one opens and is asked
for in look-ups, together with the keyless fingerprint of values stored before encryption was
switched on. ``keyledger admin rotate-key`` rewrites every value under the first key (or in clear
with ``--decrypt``), after which the other keys can be removed.

Wi-Fi voucher codes are not sealed: the Nexudus contract searches them by substring and orders
lists by them, which no database can do over ciphertext; they open a hotspot, not a door.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import func

_FORMAT = b"\x01"
_KEY_ID_SIZE = 8
_NONCE_SIZE = 12
_HEADER_SIZE = len(_FORMAT) + _KEY_ID_SIZE + _NONCE_SIZE
_KEYLESS_FINGERPRINT_KEY = b"keyledger/value-fingerprint/keyless/v1"
KEY_SIZE = 32


class UnreadableValue(Exception):
    """A sealed value that cannot be opened: its key is not configured, or it was altered."""


def _derive(master: bytes, purpose: bytes, length: int) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=None, info=b"keyledger/" + purpose
    ).derive(master)


def new_key() -> str:
    """A fresh key in the form ``KEYLEDGER_ENCRYPTION_KEY`` takes (URL-safe base64, 32 bytes)."""
    return base64.urlsafe_b64encode(os.urandom(KEY_SIZE)).decode("ascii")


def parse_keys(text: str) -> list[bytes]:
    """The keys of a ``KEYLEDGER_ENCRYPTION_KEY`` value; ValueError naming the position of a bad
    one (never its text)."""
    keys: list[bytes] = []
    for position, part in enumerate(text.split(","), start=1):
        encoded = part.strip()
        try:
            key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_SIZE:
            raise ValueError(
                f"key {position} is not {KEY_SIZE} bytes in URL-safe base64 "
                "(make one with `keyledger admin new-key`)"
            )
        keys.append(key)
    if len(set(keys)) != len(keys):
        raise ValueError("a key is listed twice")
    return keys


@dataclass(frozen=True)
class _Key:
    id: bytes
    cipher: AESGCM
    fingerprint_key: bytes

    @classmethod
    def derived_from(cls, master: bytes) -> _Key:
        return cls(
            id=_derive(master, b"key-id/v1", _KEY_ID_SIZE),
            cipher=AESGCM(_derive(master, b"value-encryption/v1", KEY_SIZE)),
            fingerprint_key=_derive(master, b"value-fingerprint/v1", KEY_SIZE),
        )


def _fingerprint(key: bytes, value: str) -> bytes:
    return hmac.digest(key, value.encode("utf-8"), "sha256")


def _context(uid: UUID) -> bytes:
    return b"keyledger/credential/" + uid.bytes


_KEY_ID = slice(len(_FORMAT), len(_FORMAT) + _KEY_ID_SIZE)


def _key_id(sealed: bytes) -> bytes:
    return sealed[_KEY_ID]


def key_id_in_sql(column: Any) -> Any:
    """The key id of a sealed column, computed by the database (SQL ``substr`` counts from 1)."""
    return func.substr(column, _KEY_ID.start + 1, _KEY_ID_SIZE)


class ValueSealer:
    """How door credential values are written to and read from the store."""

    def __init__(self, keys: Sequence[bytes] = ()) -> None:
        self._keys = [_Key.derived_from(key) for key in keys]
        self._by_id = {key.id: key for key in self._keys}
        self._primary = self._keys[0] if self._keys else None
        self._fingerprint_keys = [key.fingerprint_key for key in self._keys]
        self._fingerprint_keys.append(_KEYLESS_FINGERPRINT_KEY)

    @property
    def sealing(self) -> bool:
        return self._primary is not None

    @property
    def primary_key_id(self) -> str | None:
        return None if self._primary is None else self._primary.id.hex()

    def fingerprint(self, value: str) -> bytes:
        """The fingerprint a value is stored with now."""
        key = _KEYLESS_FINGERPRINT_KEY if self._primary is None else self._primary.fingerprint_key
        return _fingerprint(key, value)

    def fingerprints(self, values: Sequence[str]) -> list[bytes]:
        """Every fingerprint a stored value may carry (under each key, and keyless)."""
        return [_fingerprint(key, value) for value in values for key in self._fingerprint_keys]

    def columns(self, uid: UUID, value: str) -> dict[str, Any]:
        """The ``value``, ``value_sealed`` and ``value_fp`` columns of a door credential."""
        if self._primary is None:
            return {"value": value, "value_sealed": None, "value_fp": self.fingerprint(value)}
        nonce = os.urandom(_NONCE_SIZE)
        sealed = self._primary.cipher.encrypt(nonce, value.encode("utf-8"), _context(uid))
        return {
            "value": "",
            "value_sealed": _FORMAT + self._primary.id + nonce + sealed,
            "value_fp": self.fingerprint(value),
        }

    def open(self, uid: UUID, sealed: bytes) -> str:
        """The value of a sealed column."""
        if len(sealed) < _HEADER_SIZE or sealed[:1] != _FORMAT:
            raise UnreadableValue(f"credential {uid}: its sealed value has an unknown format")
        key_id = _key_id(sealed)
        key = self._by_id.get(key_id)
        if key is None:
            raise UnreadableValue(
                f"credential {uid}: its value is sealed with key {key_id.hex()}, which "
                "KEYLEDGER_ENCRYPTION_KEY does not hold"
            )
        nonce = sealed[_KEY_ID.stop : _HEADER_SIZE]
        try:
            plain = key.cipher.decrypt(nonce, sealed[_HEADER_SIZE:], _context(uid))
        except InvalidTag:
            raise UnreadableValue(
                f"credential {uid}: its sealed value fails authentication (altered, or moved "
                "from another row)"
            ) from None
        return plain.decode("utf-8")

    def is_current(self, sealed: bytes | None) -> bool:
        """Whether a value stored so is already in the form ``columns`` writes now."""
        if self._primary is None:
            return sealed is None
        return sealed is not None and _key_id(sealed) == self._primary.id

    def holds(self, key_id: str) -> bool:
        """Whether the key with this id (hex, as ``sealed_key_ids`` reports) is configured."""
        return bytes.fromhex(key_id) in self._by_id

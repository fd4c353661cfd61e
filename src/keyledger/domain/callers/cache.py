"""A per-process memory of recently authenticated integration callers.

Authenticating an AccessToken reads the connection, its integration and its enterprises: four
queries on every Mews call and every door check. Remembering the answer for a few seconds
(``KEYLEDGER_AUTH_CACHE_SECONDS``, default 2; 0 turns it off) removes them from the hot path. The
price is stated in docs/architecture.md: revoking a token or disabling an integration takes effect
on every worker within that many seconds. Only successes are remembered; the key is the secrets'
keyed digest, never a secret.
"""

from __future__ import annotations

import time

from keyledger.domain.callers.models import IntegrationCaller

_MAX_ENTRIES = 10_000


class CallerCache:
    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._callers: dict[str, tuple[IntegrationCaller, float]] = {}

    def get(self, key: str) -> IntegrationCaller | None:
        if self._seconds <= 0:
            return None
        found = self._callers.get(key)
        if found is None:
            return None
        if found[1] < time.monotonic():
            del self._callers[key]
            return None
        return found[0]

    def remember(self, key: str, caller: IntegrationCaller) -> None:
        if self._seconds <= 0:
            return
        if len(self._callers) >= _MAX_ENTRIES:
            self._callers.clear()
        self._callers[key] = (caller, time.monotonic() + self._seconds)

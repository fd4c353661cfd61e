"""keyledger: one credential store behind the Mews and Nexudus access-token APIs."""

from __future__ import annotations

__version__ = "0.1.0"

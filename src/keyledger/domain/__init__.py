"""The core: one package per domain, each ``models`` / ``repository`` / ``service``. It knows
nothing of HTTP, RADIUS or any vendor's wire names (import-linter contracts in pyproject.toml)."""

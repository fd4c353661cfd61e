"""keyledger's own API (``/api/v1``): resources, door checks (and, later, hotspots and events)."""

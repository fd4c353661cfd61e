"""Network access servers (hotspots asking over RADIUS) and their accounting sessions."""

"""Hotspot sessions: devices online with a Wi-Fi voucher, consuming its minutes."""

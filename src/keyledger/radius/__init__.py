"""RADIUS: real hotspots log devices in with keyledger's vouchers (docs/radius.md).

A protocol adapter like ``keyledger.web.mews``: it translates packets into calls of the domain
(``domain/nas``, over the hotspot core) and never imports ``keyledger.web``.
"""

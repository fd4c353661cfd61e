"""The Nexudus Spaces API dialect: ``/api/spaces/accesstokens`` and ``/api/token``."""

"""Callers: integrations with their access tokens (Mews) and users with roles (Nexudus)."""

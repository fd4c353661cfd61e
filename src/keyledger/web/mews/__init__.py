"""The Mews Connector API dialect: ``/api/connector/v1/resourceAccessTokens/*``."""

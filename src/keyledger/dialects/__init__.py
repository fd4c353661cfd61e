"""Wire dialects: thin adapters between a vendor's API and the credential core."""

"""Domain-free building blocks: time, hashing, sealing, input policy, the error vocabulary and
settings. Nothing here imports the domain, the store or a protocol (import-linter contract)."""

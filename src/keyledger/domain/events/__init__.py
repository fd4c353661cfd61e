"""The event log: every change and every access decision, immutable, never a credential value."""

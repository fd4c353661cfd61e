"""Guessing budgets: how many unknown values a caller and a property may try per window."""

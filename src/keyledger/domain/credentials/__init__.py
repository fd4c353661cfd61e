"""The credential core: rules, transactions and pagination over the one credential store."""

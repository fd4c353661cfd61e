"""keyledger benchmarks (see benchmarks/README.md)."""

"""Benchmarks and evaluation: speed, memory, size and accuracy of a bundle's variants."""

"""Miner drivers (placeholder while the package is being written)."""
